import { PageHead } from '../ui';
export function Audit(_p: any) { return <PageHead title="Audit" />; }

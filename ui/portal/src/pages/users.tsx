import { PageHead } from '../ui';
export function Users(_p: any) { return <PageHead title="Users" />; }

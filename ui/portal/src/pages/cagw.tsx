import { PageHead } from '../ui';
export function CagwCredentials(_p: any) { return <PageHead title="CagwCredentials" />; }

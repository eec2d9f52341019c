import { PageHead } from '../ui';
export function Protocols(_p: any) { return <PageHead title="Protocols" />; }
export function ProtocolPage(_p: any) { return <PageHead title="ProtocolPage" />; }

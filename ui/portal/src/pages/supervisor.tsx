import { PageHead } from '../ui';
export function SupervisorLogin(_p: { onIn: () => void }) { return <PageHead title="Supervisor" />; }
export function Supervisor(_p: { path: string; onOut: () => void }) { return <PageHead title="Supervisor" />; }

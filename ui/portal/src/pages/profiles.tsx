import { PageHead } from '../ui';
export function Profiles(_p: any) { return <PageHead title="Profiles" />; }
export function ProfilePage(_p: any) { return <PageHead title="ProfilePage" />; }

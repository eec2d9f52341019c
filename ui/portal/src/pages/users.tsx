// User Management: users (invite, delete), roles (add/remove members).
import { useState } from 'preact/hooks';
import { api } from '../api';
import { Check, CopyValue, Dialog, ErrorBox, Field, Loading, Notice, PageHead, Select, Status, Tabs, fmtDate, useAction, useCan, useLoad } from '../ui';

export const ROLES = ['Owners', 'CA Administrators', 'Certificate Administrators', 'CA Auditors', 'Protocol Operators', 'Protocol Auditors'];

interface User {
  email: string;
  firstName?: string;
  lastName?: string;
  status: string;
  roles: string[];
  [k: string]: unknown;
}

export function RolePicker({ roles, onChange, legend = 'Roles' }: { roles: string[]; onChange: (r: string[]) => void; legend?: string }) {
  return (
    <fieldset>
      <legend>{legend}</legend>
      {ROLES.map((r) => (
        <Check key={r} label={r} checked={roles.includes(r)} onChange={(v) => onChange(v ? [...roles, r] : roles.filter((x) => x !== r))} />
      ))}
    </fieldset>
  );
}

export function Users() {
  const can = useCan();
  const list = useLoad(() => api<{ users: User[] }>('GET', '/users'));
  const [tab, setTab] = useState('users');
  const [invite, setInvite] = useState(false);
  const [busy, error, run] = useAction();
  const [msg, setMsg] = useState('');
  const users = list.data?.users || [];
  const setRoles = (u: User, roles: string[]) =>
    run(async () => {
      await api('PUT', `/users/${encodeURIComponent(u.email)}/roles`, { roles });
      list.reload();
    });
  return (
    <>
      <PageHead title="User Management">
        {can('user.invite') && <button type="button" class="primary" onClick={() => setInvite(true)}>Invite user</button>}
      </PageHead>
      <ErrorBox error={list.error || error} />
      {msg && <Notice>{msg}</Notice>}
      <Tabs tabs={[['users', 'Users'], ['roles', 'Roles']]} active={tab} onChange={setTab} />
      {list.loading && <Loading />}
      {tab === 'users' && (
        <div class="tablewrap">
          <table>
            <caption class="sr-only">Users of this partition</caption>
            <thead><tr><th scope="col">Email</th><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Roles</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>
              {users.map((u) => (
                <tr key={u.email}>
                  <td>{u.email}</td>
                  <td>{[u.firstName, u.lastName].filter(Boolean).join(' ')}</td>
                  <td><Status s={u.status} /></td>
                  <td>{u.roles.join(', ')}</td>
                  <td>
                    {can('user.roles') && (
                      <button type="button" class="small danger" aria-label={`Delete user ${u.email}`} disabled={busy}
                        onClick={() => run(async () => { if (!confirm(`Delete ${u.email}? Their sessions end at once.`)) return; await api('DELETE', `/users/${encodeURIComponent(u.email)}`); setMsg(`Deleted ${u.email}.`); list.reload(); })}>
                        Delete
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {tab === 'roles' &&
        ROLES.map((r) => {
          const members = users.filter((u) => u.roles.includes(r));
          const others = users.filter((u) => !u.roles.includes(r));
          return (
            <section class="card" key={r} aria-label={`Role ${r}`}>
              <h2>{r}</h2>
              <ul class="plain">
                {members.map((u) => (
                  <li key={u.email}>
                    {u.email}{' '}
                    {can('user.roles') && (
                      <button type="button" class="small" aria-label={`Remove ${u.email} from ${r}`} disabled={busy} onClick={() => setRoles(u, u.roles.filter((x) => x !== r))}>Remove</button>
                    )}
                  </li>
                ))}
              </ul>
              {!members.length && <p class="muted">No members.</p>}
              {can('user.roles') && others.length > 0 && <AddMember role={r} users={others} onAdd={(u) => setRoles(u, [...u.roles, r])} busy={busy} />}
            </section>
          );
        })}
      {invite && <InviteDialog onClose={() => { setInvite(false); list.reload(); }} />}
    </>
  );
}

function AddMember({ role, users, onAdd, busy }: { role: string; users: User[]; onAdd: (u: User) => void; busy: boolean }) {
  const [sel, setSel] = useState('');
  return (
    <form class="inline" onSubmit={(e) => { e.preventDefault(); const u = users.find((x) => x.email === sel); if (u) onAdd(u); setSel(''); }}>
      <Select label={`Add a member to ${role}`} value={sel} onChange={(e) => setSel((e.target as HTMLSelectElement).value)} options={[['', 'Choose a user…'], ...users.map((u) => u.email)]} />
      <button type="submit" disabled={busy || !sel}>Add member</button>
    </form>
  );
}

function InviteDialog({ onClose }: { onClose: () => void }) {
  const [email, setEmail] = useState('');
  const [first, setFirst] = useState('');
  const [last, setLast] = useState('');
  const [roles, setRoles] = useState<string[]>([]);
  const [res, setRes] = useState<any>(null);
  const [busy, error, run] = useAction();
  return (
    <Dialog title="Invite a user" onClose={onClose}>
      {res ? (
        <>
          <Notice>Invitation for {res.email} created; valid until {fmtDate(res.expiresAt)}.</Notice>
          {res.inviteUrl ? (
            <div class="onetime">
              <p class="warn"><strong>Shown once.</strong> No mail relay is configured: pass this single-use link to {res.email} yourself.</p>
              <CopyValue label="Invitation link" value={res.inviteUrl} />
            </div>
          ) : (
            <p>The link was mailed.</p>
          )}
          <div class="actions"><button type="button" onClick={onClose}>Close</button></div>
        </>
      ) : (
        <form onSubmit={(e) => { e.preventDefault(); void run(async () => { setRes(await api('POST', '/users/invitations', { email, firstName: first, lastName: last, roles })); }); }}>
          <Field label="Email" name="email" type="email" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value.trim())} />
          <Field label="First name" name="firstName" value={first} onInput={(e) => setFirst((e.target as HTMLInputElement).value)} />
          <Field label="Last name" name="lastName" value={last} onInput={(e) => setLast((e.target as HTMLInputElement).value)} />
          <RolePicker roles={roles} onChange={setRoles} />
          <ErrorBox error={error} />
          <div class="actions">
            <button type="button" onClick={onClose}>Cancel</button>
            <button type="submit" class="primary" disabled={busy}>Send invitation</button>
          </div>
        </form>
      )}
    </Dialog>
  );
}

// The supervisor's pages (service operators, not partition users): a
// supervisor token (pkiaasd supervisor-token), subscriptions with their
// inventory, assignment to a region (terms must be accepted), partitions.
import { useState } from 'preact/hooks';
import { setSupervisorToken, supervisor } from '../api';
import { navigate } from '../router';
import { Check, CopyValue, Details, Dialog, ErrorBox, Field, Link, Loading, Notice, PageHead, Tabs, useAction, useLoad } from '../ui';

export function SupervisorLogin({ onIn }: { onIn: () => void }) {
  const [token, setToken] = useState('');
  const [busy, error, run] = useAction();
  return (
    <main class="login" id="main">
      <h1>pkiaas supervisor</h1>
      <form class="card" aria-label="Supervisor sign-in"
        onSubmit={(e) => { e.preventDefault(); void run(async () => { setSupervisorToken(token); try { await supervisor('GET', '/subscriptions'); onIn(); } catch (x) { setSupervisorToken(null); throw x; } }); }}>
        <h2>Supervisor sign-in</h2>
        <ErrorBox error={error} />
        <Field label="Supervisor token" name="token" type="password" required autoComplete="off" value={token}
          hint="From `pkiaasd supervisor-token --data-dir DIR`. Kept in this tab only." onInput={(e) => setToken((e.target as HTMLInputElement).value.trim())} />
        <button type="submit" class="primary" disabled={busy}>Sign in</button>
      </form>
      <p class="muted"><Link to="/">Partition sign-in</Link></p>
    </main>
  );
}

interface Sub {
  id: string;
  status: string;
  region: string | null;
  partition: string | null;
  label: string | null;
  url: string | null;
  inventory: { certificatesIssued: number; certificatesPurchased: number; casActive: number; casPurchased: number };
  tier: string;
}

export function Supervisor({ path, onOut }: { path: string; onOut: () => void }) {
  const [tab, setTab] = useState(path.endsWith('/partitions') ? 'partitions' : 'subs');
  const [search, setSearch] = useState('');
  const [applied, setApplied] = useState('');
  const subs = useLoad(() => supervisor<{ subscriptions: Sub[] }>('GET', `/subscriptions${applied ? `?search=${encodeURIComponent(applied)}` : ''}`), [applied]);
  const parts = useLoad(() => supervisor<{ partitions: any[] }>('GET', `/partitions${applied ? `?search=${encodeURIComponent(applied)}` : ''}`), [applied]);
  const [sel, setSel] = useState<Sub | null>(null);
  const [assign, setAssign] = useState<Sub | null>(null);
  const [create, setCreate] = useState(false);
  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <span class="brand">pkiaas supervisor</span>
        <span class="who" />
        <button type="button" onClick={() => { setSupervisorToken(null); onOut(); navigate('/supervisor'); }}>Sign out</button>
      </header>
      <main id="main" class="solo">
        <PageHead title="Supervisor">
          <button type="button" class="primary" onClick={() => setCreate(true)}>New subscription</button>
        </PageHead>
        <Tabs tabs={[['subs', 'Subscriptions'], ['partitions', 'Partitions']]} active={tab} onChange={setTab} />
        <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); setApplied(search); }}>
          <Field label="Search" type="search" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
          <button type="submit">Search</button>
        </form>
        {tab === 'subs' && (
          <>
            <ErrorBox error={subs.error} />
            {subs.loading && <Loading />}
            <div class="tablewrap">
              <table>
                <caption class="sr-only">Subscriptions</caption>
                <thead><tr><th scope="col">Subscription</th><th scope="col">Status</th><th scope="col">Region</th><th scope="col">Partition</th><th scope="col">Certificates</th><th scope="col">CAs</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
                <tbody>
                  {(subs.data?.subscriptions || []).map((s) => (
                    <tr key={s.id}>
                      <td><button type="button" class="small" aria-label={`Details of ${s.id}`} onClick={() => setSel(s)}>{s.id}</button><div class="muted small">{s.label || ''} {s.tier}</div></td>
                      <td>{s.status}</td>
                      <td>{s.region || '—'}</td>
                      <td>{s.partition || '—'}</td>
                      <td>{s.inventory.certificatesIssued} / {s.inventory.certificatesPurchased}</td>
                      <td>{s.inventory.casActive} / {s.inventory.casPurchased}</td>
                      <td>{s.status === 'Unassigned' && <button type="button" class="small primary" onClick={() => setAssign(s)}>Assign</button>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
        {tab === 'partitions' && (
          <>
            <ErrorBox error={parts.error} />
            <div class="tablewrap">
              <table>
                <caption class="sr-only">Partitions</caption>
                <thead><tr><th scope="col">Partition</th><th scope="col">Label</th><th scope="col">Region</th><th scope="col">Subscription</th></tr></thead>
                <tbody>
                  {(parts.data?.partitions || []).map((p) => (
                    <tr key={p.accountId}><td>{p.accountId}</td><td>{p.label}</td><td>{p.region}</td><td>{p.subscriptionId}</td></tr>
                  ))}
                </tbody>
              </table>
            </div>
          </>
        )}
      </main>
      {sel && (
        <Dialog title={`Subscription ${sel.id}`} onClose={() => setSel(null)}>
          {sel.url && <CopyValue label="Portal URL" value={sel.url} />}
          <Details obj={{ ...sel, inventory: undefined, ...sel.inventory }} label="Subscription fields" />
        </Dialog>
      )}
      {assign && <AssignDialog sub={assign} onClose={() => { setAssign(null); subs.reload(); parts.reload(); }} />}
      {create && <CreateSub onClose={() => { setCreate(false); subs.reload(); }} />}
    </>
  );
}

function CreateSub({ onClose }: { onClose: () => void }) {
  const [certs, setCerts] = useState('1000');
  const [cas, setCas] = useState('10');
  const [done, setDone] = useState<any>(null);
  const [busy, error, run] = useAction();
  return (
    <Dialog title="New subscription" onClose={onClose}>
      {done ? (
        <>
          <Notice>Subscription {done.id} created (unassigned).</Notice>
          <div class="actions"><button type="button" onClick={onClose}>Close</button></div>
        </>
      ) : (
        <form onSubmit={(e) => { e.preventDefault(); void run(async () => setDone(await supervisor('POST', '/subscriptions', { certificates: Number(certs), cas: Number(cas) }))); }}>
          <Field label="Certificates purchased" type="number" min={1} required value={certs} onInput={(e) => setCerts((e.target as HTMLInputElement).value)} />
          <Field label="CAs purchased" type="number" min={1} required value={cas} onInput={(e) => setCas((e.target as HTMLInputElement).value)} />
          <ErrorBox error={error} />
          <div class="actions"><button type="button" onClick={onClose}>Cancel</button><button type="submit" class="primary" disabled={busy}>Create</button></div>
        </form>
      )}
    </Dialog>
  );
}

function AssignDialog({ sub, onClose }: { sub: Sub; onClose: () => void }) {
  const [region, setRegion] = useState('us');
  const [label, setLabel] = useState('');
  const [email, setEmail] = useState('');
  const [first, setFirst] = useState('');
  const [last, setLast] = useState('');
  const [terms, setTerms] = useState(false);
  const [done, setDone] = useState<any>(null);
  const [busy, error, run] = useAction();
  return (
    <Dialog title={`Assign ${sub.id} to a region`} onClose={onClose}>
      {done ? (
        <>
          <Notice>Partition <code>{done.partition.accountId}</code> created in {done.partition.region}.</Notice>
          <div class="onetime">
            <p class="warn"><strong>Shown once.</strong> Send the owner this single-use invitation link.</p>
            <CopyValue label="Owner invitation link" value={done.owner.inviteUrl} />
          </div>
          <div class="actions"><button type="button" onClick={onClose}>Close</button></div>
        </>
      ) : (
        <form onSubmit={(e) => { e.preventDefault(); void run(async () => setDone(await supervisor('POST', `/subscriptions/${sub.id}/assign`, { region, label, acceptTerms: terms, ownerEmail: email, ownerFirstName: first, ownerLastName: last }))); }}>
          <Field label="Region" required list="regions" value={region} hint="One of the daemon's `regions` setting (default us, eu, pqlab)."
            onInput={(e) => setRegion((e.target as HTMLInputElement).value.trim())} />
          <datalist id="regions">{['us', 'eu', 'pqlab'].map((r) => <option key={r} value={r} />)}</datalist>
          <Field label="Label" required value={label} onInput={(e) => setLabel((e.target as HTMLInputElement).value)} />
          <Field label="Owner email" type="email" required value={email} onInput={(e) => setEmail((e.target as HTMLInputElement).value.trim())} />
          <Field label="Owner first name" value={first} onInput={(e) => setFirst((e.target as HTMLInputElement).value)} />
          <Field label="Owner last name" value={last} onInput={(e) => setLast((e.target as HTMLInputElement).value)} />
          <Check label="I accept the terms of service for this subscription" checked={terms} onChange={setTerms} />
          <ErrorBox error={error} />
          <div class="actions"><button type="button" onClick={onClose}>Cancel</button><button type="submit" class="primary" disabled={busy || !terms}>Assign</button></div>
        </form>
      )}
    </Dialog>
  );
}

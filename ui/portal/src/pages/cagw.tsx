// CA Gateway credentials: TLS client certificates for the /cagw/v1 API,
// with per-CA roles; the PKCS#12 and its password are shown once.
import { useState } from 'preact/hooks';
import { api, base64ToBlob, saveBlob } from '../api';
import { CopyValue, Dialog, ErrorBox, Field, Loading, PageHead, Select, fmtDate, useAction, useLoad } from '../ui';
import type { CA } from './cas';
import { RolePicker } from './users';

interface Grant {
  caId: string;
  roles: string[];
}
interface Cred {
  id: string;
  name: string;
  serialNumber: string;
  notAfter: string;
  createdAt: string;
  grants: Grant[];
}

function P12Once({ res, onDone }: { res: any; onDone: () => void }) {
  const [taken, setTaken] = useState(false);
  return (
    <div class="onetime" role="region" aria-label="One-time secret">
      <p class="warn"><strong>Shown once.</strong> Download the PKCS#12 and copy its password now: pkiaas keeps neither.</p>
      <CopyValue label="PKCS#12 password" value={res.password} />
      <div class="actions">
        <button type="button" class="primary" disabled={taken}
          onClick={() => { saveBlob(base64ToBlob(res.pkcs12, 'application/x-pkcs12'), res.fileName || `pkcs12-${res.id}.p12`); setTaken(true); }}>
          {taken ? 'PKCS#12 downloaded' : 'Download PKCS#12'}
        </button>
        <button type="button" onClick={onDone}>I have stored both</button>
      </div>
    </div>
  );
}

function GrantsEditor({ grants, cas, onChange }: { grants: Grant[]; cas: CA[]; onChange: (g: Grant[]) => void }) {
  const [add, setAdd] = useState('');
  const free = cas.filter((c) => !grants.some((g) => g.caId === c.id));
  return (
    <>
      {grants.map((g, i) => (
        <div class="card" key={g.caId}>
          <strong>CA {g.caId}</strong>{' '}
          <button type="button" class="small" aria-label={`Remove CA ${g.caId}`} onClick={() => onChange(grants.filter((_, j) => j !== i))}>Remove CA</button>
          <RolePicker legend={`Roles on ${g.caId}`} roles={g.roles} onChange={(r) => onChange(grants.map((x, j) => (j === i ? { ...x, roles: r } : x)))} />
        </div>
      ))}
      <div class="inline filters">
        <Select label="Add CA" value={add} onChange={(e) => setAdd((e.target as HTMLSelectElement).value)} options={[['', 'Choose a CA…'], ...free.map((c) => [c.id, `${c.friendlyName} (${c.id})`] as [string, string])]} />
        <button type="button" disabled={!add} onClick={() => { onChange([...grants, { caId: add, roles: ['Certificate Administrators'] }]); setAdd(''); }}>Add CA</button>
      </div>
    </>
  );
}

export function CagwCredentials() {
  const list = useLoad(() => api<{ credentials: Cred[] }>('GET', '/cagw-credentials'));
  const cas = useLoad(() => api<{ cas: CA[] }>('GET', '/cas'));
  const [create, setCreate] = useState(false);
  const [edit, setEdit] = useState<Cred | null>(null);
  const [once, setOnce] = useState<any>(null);
  const [busy, error, run] = useAction();
  const active = (cas.data?.cas || []).filter((c) => c.status === 'active');
  return (
    <>
      <PageHead title="CAGW Credentials">
        <button type="button" class="primary" onClick={() => setCreate(true)}>Create credential</button>
      </PageHead>
      <p class="muted">Client certificates for the CA Gateway API (<a href="/cagw/swagger-ui">/cagw/v1</a>), with roles per CA.</p>
      <ErrorBox error={list.error || error} />
      {once && <P12Once res={once} onDone={() => setOnce(null)} />}
      {list.loading && <Loading />}
      <div class="tablewrap">
        <table>
          <caption class="sr-only">CA Gateway credentials</caption>
          <thead><tr><th scope="col">Credential</th><th scope="col">Expires</th><th scope="col">CAs and roles</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {(list.data?.credentials || []).map((c) => (
              <tr key={c.id}>
                <td><strong>{c.name}</strong><div class="muted small">{c.id}</div></td>
                <td>{fmtDate(c.notAfter)}</td>
                <td>{c.grants.map((g) => <div key={g.caId}>{g.caId}: {g.roles.join(', ')}</div>)}</td>
                <td>
                  <div class="actions">
                    <button type="button" class="small" aria-label={`Edit CAs and roles of ${c.id}`} onClick={() => setEdit(c)}>CAs and roles</button>
                    <button type="button" class="small" aria-label={`Renew ${c.id}`} disabled={busy}
                      onClick={() => run(async () => { if (!confirm(`Renew ${c.id}? The current certificate stops working at once.`)) return; setOnce(await api('POST', `/cagw-credentials/${c.id}/renew`)); list.reload(); })}>Renew</button>
                    <button type="button" class="small danger" aria-label={`Delete ${c.id}`} disabled={busy}
                      onClick={() => run(async () => { if (!confirm(`Delete ${c.id}? It stops working at once.`)) return; await api('DELETE', `/cagw-credentials/${c.id}`); list.reload(); })}>Delete</button>
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && !list.data.credentials.length && <p class="muted">No credentials yet.</p>}
      {create && <CredDialog cas={active} onClose={() => setCreate(false)} onDone={(r) => { setCreate(false); setOnce(r); list.reload(); }} />}
      {edit && <CredDialog cas={active} cred={edit} onClose={() => setEdit(null)} onDone={() => { setEdit(null); list.reload(); }} />}
    </>
  );
}

function CredDialog({ cas, cred, onClose, onDone }: { cas: CA[]; cred?: Cred; onClose: () => void; onDone: (r: any) => void }) {
  const [id, setId] = useState(cred?.id || '');
  const [name, setName] = useState(cred?.name || '');
  const [grants, setGrants] = useState<Grant[]>(cred?.grants || []);
  const [busy, error, run] = useAction();
  return (
    <Dialog title={cred ? `CAs and roles of ${cred.id}` : 'Create a CA Gateway credential'} onClose={onClose} wide>
      <form onSubmit={(e) => { e.preventDefault(); void run(async () => {
        if (cred) onDone(await api('PUT', `/cagw-credentials/${cred.id}/grants`, { grants }));
        else onDone(await api('POST', '/cagw-credentials', { id, name, grants }));
      }); }}>
        {!cred && (
          <>
            <Field label="Identifier" name="id" required value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} />
            <Field label="Name" name="name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          </>
        )}
        <GrantsEditor grants={grants} cas={cas} onChange={setGrants} />
        <ErrorBox error={error} />
        <div class="actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy}>{cred ? 'Save' : 'Create credential'}</button>
        </div>
      </form>
    </Dialog>
  );
}

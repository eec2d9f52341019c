// Enrollment Protocols: configurations of every type (acme, intune, mdmws,
// scep, est, cmp), their URLs, one-time secrets (EAB keys, credentials),
// MDM Digital IDs, end entities, events and issued certificates.
import { useState } from 'preact/hooks';
import { api, q } from '../api';
import { navigate } from '../router';
import {
  Check, CopyValue, Details, Dialog, ErrorBox, Field, Link, Loading, OneTime, PageHead, Select, Status, Tabs, TextArea,
  fmtDate, useAction, useCan, useLoad,
} from '../ui';
import type { CA } from './cas';

const TYPES: [string, string][] = [
  ['acme', 'ACME'], ['scep', 'SCEP'], ['est', 'EST'], ['cmp', 'CMP'], ['intune', 'Microsoft Intune (SCEP)'], ['mdmws', 'MDM web service (Jamf, Workspace ONE, Ivanti, MaaS360)'],
];
const URL_KEYS = ['directoryUrl', 'scepUrl', 'estUrl', 'cmpUrl', 'mdmWebServiceUrl'];
/** Protocols with credentials (EST/MDM user + password, CMP reference + MAC secret, SCEP static challenge). */
const HAS_CREDS = ['est', 'mdmws', 'cmp', 'scep'];

interface Proto {
  id: string;
  type: string;
  caId: string;
  profileId: string;
  description?: string;
  [k: string]: unknown;
}

export function Protocols() {
  const can = useCan();
  const list = useLoad(() => api<{ protocols: Proto[] }>('GET', '/protocols'));
  const [create, setCreate] = useState(false);
  const [type, setType] = useState('');
  const rows = (list.data?.protocols || []).filter((p) => !type || p.type === type);
  return (
    <>
      <PageHead title="Enrollment Protocols">
        {can('enroll.configure') && <button type="button" class="primary" onClick={() => setCreate(true)}>Create configuration</button>}
      </PageHead>
      <ErrorBox error={list.error} />
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <Select label="Type" value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)} options={[['', 'All types'], ...TYPES]} />
      </form>
      {list.loading && <Loading />}
      <div class="tablewrap">
        <table>
          <caption class="sr-only">Enrollment protocol configurations</caption>
          <thead><tr><th scope="col">Configuration</th><th scope="col">Type</th><th scope="col">CA</th><th scope="col">Profile</th><th scope="col">Endpoint</th></tr></thead>
          <tbody>
            {rows.map((p) => {
              const url = URL_KEYS.map((k) => p[k] as string).find(Boolean);
              return (
                <tr key={p.id}>
                  <td><Link to={`/protocols/${p.id}`}>{p.id}</Link>{p.description ? <div class="muted small">{p.description}</div> : null}</td>
                  <td>{p.type}</td>
                  <td>{p.caId}</td>
                  <td>{p.profileId}</td>
                  <td>{url ? <code>{url}</code> : '—'}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      {list.data && !rows.length && <p class="muted">No configurations.</p>}
      {create && <CreateProto onClose={() => setCreate(false)} onDone={(p) => navigate(`/protocols/${p.id}`)} />}
    </>
  );
}

function CreateProto({ onClose, onDone }: { onClose: () => void; onDone: (p: Proto) => void }) {
  const cas = useLoad(() => api<{ cas: CA[] }>('GET', '/cas'));
  const profiles = useLoad(() => api<{ profiles: { id: string; group: string }[] }>('GET', '/profiles'));
  const [type, setType] = useState('acme');
  const [id, setId] = useState('');
  const [desc, setDesc] = useState('');
  const [ca, setCa] = useState('');
  const [profile, setProfile] = useState('');
  const [eab, setEab] = useState(true);
  const [tos, setTos] = useState('');
  const [domains, setDomains] = useState('');
  const [tenant, setTenant] = useState('');
  const [appId, setAppId] = useState('');
  const [appKey, setAppKey] = useState('');
  const [estAuth, setEstAuth] = useState('basic');
  const [implicit, setImplicit] = useState(true);
  const [extra, setExtra] = useState('');
  const [busy, error, run] = useAction();
  const issuing = (cas.data?.cas || []).filter((c) => c.type === 'subord' && c.status === 'active');
  const caId = ca || issuing[0]?.id || '';
  const assigned = useLoad(() => (caId ? api<{ profiles: string[] }>('GET', `/cas/${caId}/profiles`) : Promise.resolve({ profiles: [] })), [caId]);
  const group = type === 'acme' ? 'privatessl' : type;
  const groups = new Map((profiles.data?.profiles || []).map((p) => [p.id, p.group]));
  const fitting = (assigned.data?.profiles || []).filter((p) => groups.get(p) === group);
  const prof = fitting.includes(profile) ? profile : fitting[0] || '';
  const submit = () =>
    run(async () => {
      const body: Record<string, unknown> = { id, type, caId, profileId: prof };
      if (desc) body.description = desc;
      if (type === 'acme') {
        body.eabRequired = eab;
        if (tos) body.termsOfService = tos;
        const d = domains.split(',').map((s) => s.trim()).filter(Boolean);
        if (d.length) body.allowedDomains = d;
      }
      if (type === 'intune') Object.assign(body, { tenantId: tenant, appId, appKey });
      if (type === 'est') body.authentication = estAuth;
      if (type === 'cmp') body.implicitConfirm = implicit;
      if (extra.trim()) {
        let more;
        try {
          more = JSON.parse(extra);
        } catch (e) {
          throw new Error(`Additional settings: ${(e as Error).message}`);
        }
        Object.assign(body, more);
      }
      onDone(await api<Proto>('POST', '/protocols', body));
    });
  return (
    <Dialog title="Create an enrollment configuration" onClose={onClose} wide>
      <form onSubmit={(e) => { e.preventDefault(); void submit(); }}>
        <Select label="Protocol" name="type" value={type} onChange={(e) => setType((e.target as HTMLSelectElement).value)} options={TYPES} />
        <Field label="Identifier" name="id" required pattern="[a-z0-9_\-]{2,18}" hint="2-18 characters: a-z, 0-9, '-' or '_'." value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} />
        <Field label="Description" name="description" value={desc} onInput={(e) => setDesc((e.target as HTMLInputElement).value)} />
        <Select label="Issuing CA" name="caId" value={caId} onChange={(e) => setCa((e.target as HTMLSelectElement).value)}
          options={issuing.map((c) => [c.id, `${c.friendlyName} (${c.id})`] as [string, string])} />
        <Select label="Certificate profile" name="profileId" value={prof} onChange={(e) => setProfile((e.target as HTMLSelectElement).value)} options={fitting} />
        {caId && assigned.data && !fitting.length && (
          <p class="alert error" role="alert">The CA has no assigned profile of the group “{group}”: assign one on the CA's Certificate Profiles tab first.</p>
        )}
        {type === 'acme' && (
          <>
            <Check label="Require External Account Binding (EAB)" checked={eab} onChange={setEab} />
            <Field label="Terms of service URL (optional)" name="termsOfService" type="url" value={tos} onInput={(e) => setTos((e.target as HTMLInputElement).value)} />
            <Field label="Allowed domains (optional)" name="allowedDomains" hint="Comma-separated; names must equal or end in one of them." value={domains} onInput={(e) => setDomains((e.target as HTMLInputElement).value)} />
          </>
        )}
        {type === 'intune' && (
          <>
            <Field label="Directory (tenant) ID" name="tenantId" required value={tenant} onInput={(e) => setTenant((e.target as HTMLInputElement).value)} />
            <Field label="Application (client) ID" name="appId" required value={appId} onInput={(e) => setAppId((e.target as HTMLInputElement).value)} />
            <Field label="Client secret" name="appKey" type="password" required autoComplete="off" value={appKey} onInput={(e) => setAppKey((e.target as HTMLInputElement).value)} />
          </>
        )}
        {type === 'est' && (
          <Select label="Client authentication" name="authentication" value={estAuth} onChange={(e) => setEstAuth((e.target as HTMLSelectElement).value)} options={['basic', 'certificate']} />
        )}
        {type === 'cmp' && <Check label="Implicit confirmation" checked={implicit} onChange={setImplicit} />}
        <TextArea label="Additional settings (JSON, optional)" name="extra" rows={3} placeholder='{"allowedIpRanges": ["10.0.0.0/8"]}' value={extra}
          hint="Any further fields of this protocol (see the protocol's documentation)." onInput={(e) => setExtra((e.target as HTMLTextAreaElement).value)} />
        <ErrorBox error={error} />
        <div class="actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy || !prof}>Create</button>
        </div>
      </form>
    </Dialog>
  );
}

export function ProtocolPage({ id }: { id: string }) {
  const can = useCan();
  const p = useLoad(() => api<Proto>('GET', `/protocols/${id}`), [id]);
  const [tab, setTab] = useState('');
  const [del, setDel] = useState(false);
  const [busy, error, run] = useAction();
  const d = p.data;
  const tabs: [string, string][] = [];
  if (d?.type === 'acme') tabs.push(['eab', 'EAB keys']);
  if (d && HAS_CREDS.includes(d.type)) tabs.push(['creds', 'Credentials']);
  if (d?.type === 'mdmws') tabs.push(['dids', 'Digital IDs']);
  tabs.push(['ee', 'End Entities'], ['events', 'Events'], ['certs', 'Issued Certificates'], ['details', 'Details']);
  const active = tab || tabs[0][0];
  return (
    <>
      <PageHead title={`Configuration ${id}`}>
        {d && can('enroll.configure') && <button type="button" class="danger" onClick={() => setDel(true)}>Delete configuration</button>}
      </PageHead>
      <p><Link to="/protocols">← All configurations</Link></p>
      <ErrorBox error={p.error} />
      {d && (
        <>
          <p>{TYPES.find(([k]) => k === d.type)?.[1] || d.type} · CA <Link to={`/cas/${d.caId}`}>{d.caId}</Link> · profile {d.profileId}</p>
          <section class="card" aria-label="Endpoints">
            {URL_KEYS.filter((k) => d[k]).map((k) => <CopyValue key={k} label={k} value={d[k] as string} />)}
          </section>
          <Tabs tabs={tabs} active={active} onChange={setTab} />
          <div role="tabpanel">
            {active === 'eab' && <Secrets proto={d} kind="eab" />}
            {active === 'creds' && <Secrets proto={d} kind="creds" />}
            {active === 'dids' && <DigitalIds proto={d} />}
            {active === 'ee' && <EndEntities proto={d} />}
            {active === 'events' && <Events proto={d} />}
            {active === 'certs' && <ProtoCerts proto={d} />}
            {active === 'details' && <Details obj={d} label="Configuration fields" />}
          </div>
        </>
      )}
      {del && (
        <Dialog title={`Delete ${id}?`} onClose={() => setDel(false)}>
          <p>Clients of this configuration stop enrolling at once. Issued certificates stay valid.</p>
          <ErrorBox error={error} />
          <div class="actions">
            <button type="button" onClick={() => setDel(false)}>Cancel</button>
            <button type="button" class="danger" disabled={busy} onClick={() => run(async () => { await api('DELETE', `/protocols/${id}`); navigate('/protocols'); })}>Delete configuration</button>
          </div>
        </Dialog>
      )}
    </>
  );
}

function Secrets({ proto, kind }: { proto: Proto; kind: 'eab' | 'creds' }) {
  const can = useCan();
  const path = kind === 'eab' ? 'eab-keys' : 'credentials';
  const list = useLoad(() => api<any>('GET', `/protocols/${proto.id}/${path}`), [proto.id, kind]);
  const [name, setName] = useState('');
  const [cid, setCid] = useState('');
  const [made, setMade] = useState<any>(null);
  const [busy, error, run] = useAction();
  const rows: any[] = (kind === 'eab' ? list.data?.eabKeys : list.data?.credentials) || [];
  const key = (r: any) => (kind === 'eab' ? r.keyId : r.id);
  return (
    <section aria-label={kind === 'eab' ? 'EAB keys' : 'Credentials'}>
      <ErrorBox error={list.error || error} />
      {made && (
        <OneTime items={kind === 'eab' ? [['Key ID', made.keyId], ['HMAC key', made.hmacKey]] : [['Identifier', made.identifier || made.id], ['Secret', made.secret]]}>
          <button type="button" class="small" onClick={() => setMade(null)}>I have stored it</button>
        </OneTime>
      )}
      {can('enroll.configure') && (
        <form class="inline" onSubmit={(e) => { e.preventDefault(); void run(async () => { const body: Record<string, string> = { name }; if (cid) body.id = cid; setMade(await api('POST', `/protocols/${proto.id}/${path}`, body)); setName(''); setCid(''); list.reload(); }); }}>
          <Field label={kind === 'eab' ? 'EAB key name' : 'Credential name'} name="name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          {kind === 'creds' && <Field label="User / reference (optional)" name="credId" value={cid} onInput={(e) => setCid((e.target as HTMLInputElement).value)} />}
          <button type="submit" class="primary" disabled={busy}>{kind === 'eab' ? 'Create EAB key' : 'Create credential'}</button>
        </form>
      )}
      <div class="tablewrap">
        <table>
          <thead><tr><th scope="col">{kind === 'eab' ? 'Key ID' : 'Identifier'}</th><th scope="col">Name</th><th scope="col">Created</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={key(r)}>
                <td><code>{r.identifier || key(r)}</code></td>
                <td>{r.name}</td>
                <td>{fmtDate(r.createdAt)}</td>
                <td>
                  {can('enroll.configure') && (
                    <button type="button" class="small danger" aria-label={`Delete ${key(r)}`} disabled={busy}
                      onClick={() => run(async () => { if (!confirm(`Delete ${key(r)}? Clients using it stop working at once.`)) return; await api('DELETE', `/protocols/${proto.id}/${path}/${encodeURIComponent(key(r))}`); list.reload(); })}>
                      Delete
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && !rows.length && <p class="muted">None yet.</p>}
    </section>
  );
}

function DigitalIds({ proto }: { proto: Proto }) {
  const can = useCan();
  const list = useLoad(() => api<{ digitalIds: any[] }>('GET', `/protocols/${proto.id}/digital-ids`), [proto.id]);
  const [name, setName] = useState('');
  const [rdn, setRdn] = useState('CN=<igusername>');
  const [parent, setParent] = useState('');
  const [busy, error, run] = useAction();
  return (
    <section aria-label="Digital IDs">
      <ErrorBox error={list.error || error} />
      {can('enroll.configure') && (
        <form class="inline" onSubmit={(e) => { e.preventDefault(); void run(async () => { const b: Record<string, string> = { name, rdnFormat: rdn }; if (parent) b.parentDn = parent; await api('POST', `/protocols/${proto.id}/digital-ids`, b); setName(''); list.reload(); }); }}>
          <Field label="Digital ID name" required value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
          <Field label="RDN format" required value={rdn} onInput={(e) => setRdn((e.target as HTMLInputElement).value)} />
          <Field label="Parent DN (optional)" value={parent} onInput={(e) => setParent((e.target as HTMLInputElement).value)} />
          <button type="submit" class="primary" disabled={busy}>Add Digital ID</button>
        </form>
      )}
      <ul class="plain">
        {(list.data?.digitalIds || []).map((d) => (
          <li key={d.name}>
            <strong>{d.name}</strong> <code>{d.rdnFormat}</code> {d.parentDn && <code>{d.parentDn}</code>}{' '}
            {can('enroll.configure') && (
              <button type="button" class="small danger" aria-label={`Delete Digital ID ${d.name}`} onClick={() => run(async () => { await api('DELETE', `/protocols/${proto.id}/digital-ids/${encodeURIComponent(d.name)}`); list.reload(); })}>Delete</button>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

function EndEntities({ proto }: { proto: Proto }) {
  const can = useCan();
  const list = useLoad(() => api<{ endEntities: any[] }>('GET', `/protocols/${proto.id}/end-entities`), [proto.id]);
  const [busy, error, run] = useAction();
  const rows = list.data?.endEntities || [];
  return (
    <section aria-label="End entities">
      <ErrorBox error={list.error || error} />
      <div class="tablewrap">
        <table>
          <thead><tr><th scope="col">End entity</th><th scope="col">Status</th><th scope="col">Certificates</th><th scope="col">Expiration</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.id}>
                <td>{r.identifier || r.id}</td>
                <td><Status s={r.status} /></td>
                <td>{Array.isArray(r.certificates) ? r.certificates.length : '—'}</td>
                <td>{fmtDate(r.expiration)}</td>
                <td>
                  {can('enroll.configure') && r.status !== 'decommissioned' && (
                    <div class="actions">
                      {(r.status === 'active' ? ['deactivate', 'decommission'] : ['activate', 'decommission']).map((a) => (
                        <button key={a} type="button" class={`small${a === 'decommission' ? ' danger' : ''}`} disabled={busy}
                          onClick={() => run(async () => { if (a === 'decommission' && !confirm('Decommission this end entity? This is final.')) return; await api('POST', `/protocols/${proto.id}/end-entities/${r.id}/${a}`); list.reload(); })}>
                          {a[0].toUpperCase() + a.slice(1)}
                        </button>
                      ))}
                    </div>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && !rows.length && <p class="muted">No end entities have enrolled yet.</p>}
    </section>
  );
}

function Events({ proto }: { proto: Proto }) {
  const [after, setAfter] = useState<string[]>(['']);
  const list = useLoad(() => api<{ events: any[]; next?: string | null }>('GET', `/protocols/${proto.id}/events${q({ after: after[after.length - 1], limit: 50 })}`), [proto.id, after]);
  const rows = list.data?.events || [];
  return (
    <section aria-label="Events">
      <ErrorBox error={list.error} />
      {list.loading && <Loading />}
      <div class="tablewrap">
        <table>
          <thead><tr><th scope="col">Time</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">End entity</th><th scope="col">Serial</th><th scope="col">Reason</th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.eventId}>
                <td>{fmtDate(r.time)}</td><td>{r.type}</td><td><Status s={r.status} /></td><td>{r.endEntity || '—'}</td>
                <td>{r.serialNumber ? <Link to={`/cas/${proto.caId}/certificates/${r.serialNumber}`}>{r.serialNumber}</Link> : '—'}</td>
                <td>{r.reason || ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && !rows.length && <p class="muted">No events.</p>}
      <nav class="pager" aria-label="Event pages">
        <button type="button" disabled={after.length < 2} onClick={() => setAfter(after.slice(0, -1))}>Previous page</button>
        <button type="button" disabled={!list.data?.next} onClick={() => setAfter([...after, String(list.data!.next)])}>Next page</button>
      </nav>
    </section>
  );
}

function ProtoCerts({ proto }: { proto: Proto }) {
  const list = useLoad(() => api<{ certificates: any[] }>('GET', `/cas/${proto.caId}/certificates${q({ profile: proto.profileId, limit: 50 })}`), [proto.id]);
  const rows = list.data?.certificates || [];
  return (
    <section aria-label="Issued certificates">
      <p class="muted">Certificates of CA {proto.caId} with profile {proto.profileId}.</p>
      <ErrorBox error={list.error} />
      <ul class="plain">
        {rows.map((c) => (
          <li key={c.serialNumber}>
            <Link to={`/cas/${proto.caId}/certificates/${c.serialNumber}`}>{c.subject || c.serialNumber}</Link> <Status s={c.status} /> <span class="muted">expires {fmtDate(c.notAfter)}</span>
          </li>
        ))}
      </ul>
      {list.data && !rows.length && <p class="muted">None yet.</p>}
    </section>
  );
}

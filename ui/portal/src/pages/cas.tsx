// Certificate Authorities: the hierarchy tree with a details panel, create
// dialogs (root, external root, intermediate, issuing), downloads, import
// of an issuing certificate, deletion; the CA page (issued certificates,
// profiles, issue dialog) and the certificate page (status changes).
import { useState } from 'preact/hooks';
import { api, base64ToBlob, download, q, saveBlob } from '../api';
import {
  Check, CopyValue, Details, Dialog, ErrorBox, Field, Link, Loading, Notice, PageHead, Select, Status, Tabs,
  TextArea, fmtDate, useAction, useCan, useLoad,
} from '../ui';

export interface CA {
  id: string;
  friendlyName: string;
  type: string;
  status: string;
  parentId?: string | null;
  subject?: string | null;
  expiryDate?: string | null;
  urls?: Record<string, string | null>;
  [k: string]: unknown;
}

const TYPE_LABEL: Record<string, string> = {
  root: 'Root CA',
  externalKey: 'External root CA',
  intermediate: 'Intermediate CA',
  subord: 'Issuing CA',
};

function children(cas: CA[], parent: string | null): CA[] {
  return cas.filter((c) => (c.parentId || null) === parent || (parent === null && c.parentId && !cas.some((p) => p.id === c.parentId)));
}

function TreeNodes({ cas, parent, selected, onSelect, level }: { cas: CA[]; parent: string | null; selected: string | null; onSelect: (id: string) => void; level: number }) {
  const kids = children(cas, parent);
  if (!kids.length) return null;
  return (
    <ul role={level === 1 ? 'tree' : 'group'} aria-label={level === 1 ? 'CA hierarchy' : undefined}>
      {kids.map((c) => (
        <li key={c.id} role="treeitem" aria-level={level} aria-selected={selected === c.id} aria-expanded={children(cas, c.id).length ? true : undefined}>
          <button type="button" class={`node${selected === c.id ? ' sel' : ''}`} onClick={() => onSelect(c.id)} data-ca={c.id}>
            <span class="nm">{c.friendlyName || c.id}</span> <span class="muted small">{TYPE_LABEL[c.type] || c.type}</span> <Status s={c.status} />
          </button>
          <TreeNodes cas={cas} parent={c.id} selected={selected} onSelect={onSelect} level={level + 1} />
        </li>
      ))}
    </ul>
  );
}

function pemName(ca: string, what: string) {
  return `${ca}-${what}.pem`;
}

/** Arrow keys, Home and End move between the tree's CAs (Tab still works). */
function treeKeys(e: KeyboardEvent) {
  const nodes = Array.from((e.currentTarget as HTMLElement).querySelectorAll<HTMLButtonElement>('button.node'));
  const i = nodes.indexOf(document.activeElement as HTMLButtonElement);
  if (i < 0) return;
  const to = { ArrowDown: i + 1, ArrowUp: i - 1, Home: 0, End: nodes.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  nodes[Math.max(0, Math.min(nodes.length - 1, to))].focus();
}

export function CaList() {
  const can = useCan();
  const list = useLoad(() => api<{ cas: CA[] }>('GET', '/cas'));
  const [sel, setSel] = useState<string | null>(null);
  const [create, setCreate] = useState<string | null>(null);
  const cas = list.data?.cas || [];
  const cur = cas.find((c) => c.id === sel) || null;
  return (
    <>
      <PageHead title="Certificate Authorities">
        {can('ca.create.root') && <button type="button" class="primary" onClick={() => setCreate('root')}>Create root CA</button>}
        {can('ca.import.external') && <button type="button" onClick={() => setCreate('externalKey')}>Import external root</button>}
        {can('ca.create.intermediate') && <button type="button" onClick={() => setCreate('intermediate')}>Create intermediate CA</button>}
        {can('ca.create.subord') && <button type="button" onClick={() => setCreate('subord')}>Create issuing CA</button>}
      </PageHead>
      <ErrorBox error={list.error} />
      {list.loading && !list.data && <Loading />}
      {list.data && !cas.length && <p>No CAs yet.{can('ca.create.root') ? ' Start with a root CA.' : ''}</p>}
      <div class="split">
        <section class="card tree" aria-label="CA hierarchy" onKeyDown={treeKeys}>
          <TreeNodes cas={cas} parent={null} selected={sel} onSelect={setSel} level={1} />
        </section>
        <section class="card" aria-label="CA details">
          {cur ? <CaDetails ca={cur} onChanged={list.reload} /> : <p class="muted">Select a CA in the tree to see its details.</p>}
        </section>
      </div>
      {create && (
        <CreateCa
          type={create}
          cas={cas}
          defaultParent={cur && ['root', 'intermediate', 'externalKey'].includes(cur.type) ? cur.id : undefined}
          onClose={() => setCreate(null)}
          onDone={(c) => {
            setCreate(null);
            list.reload();
            setSel(c.id);
          }}
        />
      )}
    </>
  );
}

function CaActions({ ca, onChanged }: { ca: CA; onChanged: () => void }) {
  const can = useCan();
  const [busy, error, run] = useAction();
  const [del, setDel] = useState(false);
  const [imp, setImp] = useState(false);
  const [msg, setMsg] = useState('');
  return (
    <>
      <div class="actions">
        {ca.status === 'active' && can('ca.download') && (
          <>
            <button type="button" disabled={busy} onClick={() => run(() => download(`/cas/${ca.id}/certificate?format=pem`, pemName(ca.id, 'certificate')))}>
              Download certificate
            </button>
            <button type="button" disabled={busy} onClick={() => run(() => download(`/cas/${ca.id}/chain`, pemName(ca.id, 'chain')))}>
              Download chain
            </button>
          </>
        )}
        {ca.status === 'pending' && can('ca.download') && (
          <button type="button" disabled={busy} onClick={() => run(() => download(`/cas/${ca.id}/csr`, `${ca.id}.csr`))}>
            Download CSR
          </button>
        )}
        {ca.status === 'pending' && can('ca.import.external') && (
          <button type="button" onClick={() => setImp(true)}>Import issuing certificate</button>
        )}
        {ca.status !== 'deleted' && can('ca.delete') && (
          <button type="button" class="danger" onClick={() => setDel(true)}>Delete CA</button>
        )}
      </div>
      <ErrorBox error={error} />
      {msg && <Notice>{msg}</Notice>}
      {del && (
        <Dialog title={`Delete ${ca.id}?`} onClose={() => setDel(false)}>
          <p>
            The CA <strong>{ca.friendlyName}</strong> and <strong>every CA below it</strong> become deleted and stop issuing. The identifier stays reserved for 24 hours. This cannot be undone.
          </p>
          <ErrorBox error={error} />
          <div class="actions">
            <button type="button" onClick={() => setDel(false)}>Cancel</button>
            <button type="button" class="danger" disabled={busy}
              onClick={() => run(async () => {
                const r = await api('DELETE', `/cas/${ca.id}`);
                setDel(false);
                setMsg(`Deleted ${r.id}${r.affected?.length ? ` and ${r.affected.join(', ')}` : ''}.`);
                onChanged();
              })}>
              Delete permanently
            </button>
          </div>
        </Dialog>
      )}
      {imp && <ImportCert ca={ca} onClose={() => setImp(false)} onDone={() => { setImp(false); onChanged(); }} />}
    </>
  );
}

function CaDetails({ ca, onChanged }: { ca: CA; onChanged: () => void }) {
  return (
    <>
      <h2>{ca.friendlyName || ca.id}</h2>
      <p>
        <Link to={`/cas/${ca.id}`}>Open CA page</Link> — issued certificates, profiles, issuance.
      </p>
      <CaActions ca={ca} onChanged={onChanged} />
      <Details obj={ca} label="CA fields" />
    </>
  );
}

function readFile(f: File): Promise<string> {
  return new Promise((res, rej) => {
    const r = new FileReader();
    r.onload = () => {
      const buf = new Uint8Array(r.result as ArrayBuffer);
      const text = new TextDecoder().decode(buf);
      if (text.includes('-----BEGIN')) res(text);
      else {
        let s = '';
        buf.forEach((b) => (s += String.fromCharCode(b)));
        res(btoa(s)); // DER: base64 as the API takes it
      }
    };
    r.onerror = () => rej(r.error);
    r.readAsArrayBuffer(f);
  });
}

function ImportCert({ ca, onClose, onDone }: { ca: CA; onClose: () => void; onDone: () => void }) {
  const [pem, setPem] = useState('');
  const [busy, error, run] = useAction();
  return (
    <Dialog title={`Import the issued certificate of ${ca.id}`} onClose={onClose}>
      <form onSubmit={(e) => { e.preventDefault(); void run(async () => { await api('POST', `/cas/${ca.id}/certificate`, { certificate: pem }); onDone(); }); }}>
        <p>Sign the CA's CSR with the external root, then upload or paste the certificate (PEM or DER).</p>
        <Field label="Certificate file" type="file" accept=".pem,.crt,.cer,.der" onChange={async (e) => { const f = (e.target as HTMLInputElement).files?.[0]; if (f) setPem(await readFile(f)); }} />
        <TextArea label="Certificate (PEM)" rows={6} value={pem} onInput={(e) => setPem((e.target as HTMLTextAreaElement).value)} />
        <ErrorBox error={error} />
        <div class="actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy || !pem}>Import</button>
        </div>
      </form>
    </Dialog>
  );
}

function CreateCa({ type, cas, defaultParent, onClose, onDone }: { type: string; cas: CA[]; defaultParent?: string; onClose: () => void; onDone: (c: CA) => void }) {
  const keys = useLoad(() => api<{ signingKeyDetails: { label: string; supported: boolean }[] }>('GET', '/signing-key-details'));
  const parents = cas.filter((c) => ['root', 'intermediate', 'externalKey'].includes(c.type) && c.status === 'active');
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  const [subject, setSubject] = useState('');
  const [key, setKey] = useState('ECDSAP256+SHA256');
  const [parent, setParent] = useState(defaultParent && parents.some((p) => p.id === defaultParent) ? defaultParent : parents[0]?.id || '');
  const [expiry, setExpiry] = useState('');
  const [pathLen, setPathLen] = useState('');
  const [crl, setCrl] = useState(true);
  const [ocsp, setOcsp] = useState(false);
  const [cert, setCert] = useState('');
  const [busy, error, run] = useAction();
  const sub = type === 'intermediate' || type === 'subord';
  const submit = () =>
    run(async () => {
      const body: Record<string, unknown> = { id, friendlyName: name || id, type };
      if (type === 'externalKey') body.certificate = cert;
      else {
        body.signingKeyDetails = key;
        body.subject = subject || `CN=${name || id}`;
        if (expiry) body.expiryDate = `${expiry}T00:00:00Z`;
      }
      if (type === 'root' && pathLen !== '') body.pathLength = Number(pathLen);
      if (sub) {
        body.parentId = parent;
        body.enableCrl = crl;
        if (type === 'subord') body.enableOcsp = ocsp;
      }
      onDone(await api<CA>('POST', '/cas', body));
    });
  return (
    <Dialog title={`Create ${TYPE_LABEL[type] || type}`} onClose={onClose}>
      <form onSubmit={(e) => { e.preventDefault(); void submit(); }}>
        <Field label="Identifier" name="id" required pattern="[a-z0-9_\-]{2,18}" hint="2-18 characters: a-z, 0-9, '-' or '_'." value={id}
          onInput={(e) => setId((e.target as HTMLInputElement).value)} />
        <Field label="Friendly name" name="friendlyName" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} />
        {type === 'externalKey' ? (
          <>
            <Field label="Root certificate file" type="file" accept=".pem,.crt,.cer,.der"
              onChange={async (e) => { const f = (e.target as HTMLInputElement).files?.[0]; if (f) setCert(await readFile(f)); }} />
            <TextArea label="Root certificate (PEM)" rows={6} value={cert} onInput={(e) => setCert((e.target as HTMLTextAreaElement).value)} />
          </>
        ) : (
          <>
            <Field label="Subject DN" name="subject" placeholder={`CN=${name || id || 'My CA'},O=Example`} value={subject}
              onInput={(e) => setSubject((e.target as HTMLInputElement).value)} />
            <Select label="Signing key" name="signingKeyDetails" value={key} onChange={(e) => setKey((e.target as HTMLSelectElement).value)}
              options={(keys.data?.signingKeyDetails || [{ label: key, supported: true }]).filter((k) => k.supported).map((k) => k.label)} />
            <Field label="Expiry date (optional)" name="expiryDate" type="date" value={expiry} onInput={(e) => setExpiry((e.target as HTMLInputElement).value)} />
          </>
        )}
        {type === 'root' && (
          <Field label="Path length (optional)" name="pathLength" type="number" min={0} value={pathLen} onInput={(e) => setPathLen((e.target as HTMLInputElement).value)} />
        )}
        {sub && (
          <>
            <Select label="Parent CA" name="parentId" value={parent} onChange={(e) => setParent((e.target as HTMLSelectElement).value)}
              options={parents.map((p) => [p.id, `${p.friendlyName} (${p.id})`] as [string, string])} />
            <Check label="Publish a CRL" checked={crl} onChange={setCrl} />
            {type === 'subord' && <Check label="Run an OCSP responder" checked={ocsp} onChange={setOcsp} />}
          </>
        )}
        <ErrorBox error={error} />
        <div class="actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy}>{busy ? 'Creating…' : 'Create'}</button>
        </div>
      </form>
    </Dialog>
  );
}

// ---- the CA page ------------------------------------------------------------

export function CaPage({ id }: { id: string }) {
  const can = useCan();
  const ca = useLoad(() => api<CA>('GET', `/cas/${id}`), [id]);
  const [tab, setTab] = useState('certs');
  const [issue, setIssue] = useState(false);
  const [n, setN] = useState(0);
  const c = ca.data;
  return (
    <>
      <PageHead title={c ? `${c.friendlyName || c.id}` : id}>
        {c && c.status === 'active' && c.type === 'subord' && (can('cert.issue.csr') || can('cert.issue.p12')) && (
          <button type="button" class="primary" onClick={() => setIssue(true)}>Issue certificate</button>
        )}
      </PageHead>
      <p><Link to="/cas">← All CAs</Link></p>
      <ErrorBox error={ca.error} />
      {c && (
        <>
          <p>
            {TYPE_LABEL[c.type] || c.type} <Status s={c.status} /> · {c.subject} · expires {fmtDate(c.expiryDate)}
          </p>
          <Tabs tabs={[['certs', 'Issued Certificates'], ['profiles', 'Certificate Profiles'], ['details', 'Details']]} active={tab} onChange={setTab} />
          <div role="tabpanel">
            {tab === 'certs' && <IssuedCerts ca={c} key={n} />}
            {tab === 'profiles' && <CaProfiles ca={c} />}
            {tab === 'details' && (
              <>
                <CaActions ca={c} onChanged={ca.reload} />
                {c.urls && Object.entries(c.urls).filter(([, v]) => v).map(([k, v]) => <CopyValue key={k} label={`${k} URL`} value={v as string} />)}
                <Details obj={c} label="CA fields" />
              </>
            )}
          </div>
          {issue && <IssueDialog ca={c} onClose={() => { setIssue(false); setN(n + 1); }} />}
        </>
      )}
    </>
  );
}

interface CertSummary {
  serialNumber: string;
  status: string;
  subject: string;
  notAfter: string;
  profileId?: string;
}

function IssuedCerts({ ca, status }: { ca: CA; status?: string }) {
  const [search, setSearch] = useState('');
  const [applied, setApplied] = useState('');
  const [filter, setFilter] = useState('');
  const [stat, setStat] = useState(status || '');
  const [cursors, setCursors] = useState<string[]>(['']);
  const cursor = cursors[cursors.length - 1];
  const list = useLoad(
    () =>
      api<{ certificates: CertSummary[]; nextCursor: string | null }>('GET', `/cas/${ca.id}/certificates${q({
        q: applied, status: stat, limit: 20, cursor,
        expiresWithin: filter === '7' || filter === '30' ? filter : undefined,
        expired: filter === 'expired' ? 'true' : undefined,
      })}`),
    [applied, filter, stat, cursor],
  );
  const reset = () => setCursors(['']);
  return (
    <section aria-label="Issued certificates">
      <form class="filters" role="search" onSubmit={(e) => { e.preventDefault(); setApplied(search); reset(); }}>
        <Field label="Search" name="q" type="search" placeholder="subject, SAN or serial" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
        <Select label="Expiry" name="expiry" value={filter} onChange={(e) => { setFilter((e.target as HTMLSelectElement).value); reset(); }}
          options={[['', 'Any'], ['7', 'Expires in 7 days'], ['30', 'Expires in 30 days'], ['expired', 'Expired']]} />
        <Select label="Status" name="status" value={stat} onChange={(e) => { setStat((e.target as HTMLSelectElement).value); reset(); }}
          options={[['', 'Any'], ['issued', 'Issued'], ['revoked', 'Revoked'], ['suspended', 'Suspended']]} />
        <button type="submit">Search</button>
      </form>
      <ErrorBox error={list.error} />
      {list.loading && <Loading />}
      <div class="tablewrap">
        <table>
          <caption class="sr-only">Certificates issued by {ca.id}</caption>
          <thead>
            <tr><th scope="col">Subject</th><th scope="col">Serial number</th><th scope="col">Status</th><th scope="col">Expires</th><th scope="col">Profile</th></tr>
          </thead>
          <tbody>
            {(list.data?.certificates || []).map((c) => (
              <tr key={c.serialNumber}>
                <td><Link to={`/cas/${ca.id}/certificates/${c.serialNumber}`}>{c.subject || '(empty subject)'}</Link></td>
                <td><code class="serial">{c.serialNumber}</code></td>
                <td><Status s={c.status} /></td>
                <td>{fmtDate(c.notAfter)}</td>
                <td>{c.profileId || '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && !list.data.certificates.length && <p class="muted">No certificates match.</p>}
      <nav class="pager" aria-label="Pages">
        <button type="button" disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>Previous page</button>
        <span>Page {cursors.length}</span>
        <button type="button" disabled={!list.data?.nextCursor} onClick={() => setCursors([...cursors, list.data!.nextCursor!])}>Next page</button>
      </nav>
    </section>
  );
}

function CaProfiles({ ca }: { ca: CA }) {
  const can = useCan();
  const assigned = useLoad(() => api<{ profiles: string[] }>('GET', `/cas/${ca.id}/profiles`), [ca.id]);
  const all = useLoad(() => api<{ profiles: { id: string; allowedCATypes?: string[]; kind?: string; system?: boolean }[] }>('GET', '/profiles'));
  const [add, setAdd] = useState('');
  const [busy, error, run] = useAction();
  const have = assigned.data?.profiles || [];
  const candidates = (all.data?.profiles || []).filter((p) => !have.includes(p.id) && (!p.allowedCATypes || p.allowedCATypes.includes(ca.type)));
  return (
    <section aria-label="Certificate profiles of this CA">
      <ErrorBox error={assigned.error || error} />
      <ul class="plain">
        {have.map((p) => (
          <li key={p}>
            <Link to={`/profiles/${p}`}>{p}</Link>{' '}
            {can('ca.profiles') && (
              <button type="button" class="small" aria-label={`Remove profile ${p}`} disabled={busy}
                onClick={() => run(async () => { await api('DELETE', `/cas/${ca.id}/profiles/${p}`); assigned.reload(); })}>
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {!have.length && <p class="muted">No profiles assigned.</p>}
      {can('ca.profiles') && (
        <form class="inline" onSubmit={(e) => { e.preventDefault(); if (add) void run(async () => { await api('POST', `/cas/${ca.id}/profiles`, { profileId: add }); setAdd(''); assigned.reload(); }); }}>
          <Select label="Add profile" name="profileId" value={add} onChange={(e) => setAdd((e.target as HTMLSelectElement).value)}
            options={[['', 'Choose a profile…'], ...candidates.map((p) => [p.id, `${p.id}${p.system ? '' : ' (custom)'}`] as [string, string])]} />
          <button type="submit" disabled={busy || !add}>Add</button>
        </form>
      )}
    </section>
  );
}

const SAN_TYPES: [string, string][] = [
  ['dNSName', 'DNS name'], ['iPAddress', 'IP address'], ['rfc822Name', 'Email'], ['uniformResourceIdentifier', 'URI'],
  ['userPrincipalName', 'User principal name'], ['directoryName', 'Directory name'], ['registeredID', 'Registered ID'],
];

function IssueDialog({ ca, onClose }: { ca: CA; onClose: () => void }) {
  const can = useCan();
  const profiles = useLoad(() => api<{ profiles: string[] }>('GET', `/cas/${ca.id}/profiles`));
  const [mode, setMode] = useState<'csr' | 'p12'>(can('cert.issue.csr') ? 'csr' : 'p12');
  const [profile, setProfile] = useState('');
  const [csr, setCsr] = useState('');
  const [useCsrSubject, setUseCsrSubject] = useState(true);
  const [subject, setSubject] = useState('');
  const [sans, setSans] = useState<{ type: string; value: string }[]>([]);
  const [keyType, setKeyType] = useState('EC-P256');
  const [pw, setPw] = useState('');
  const [pw2, setPw2] = useState('');
  const [validity, setValidity] = useState('');
  const [result, setResult] = useState<any>(null);
  const [p12Taken, setP12Taken] = useState(false);
  const [busy, error, run] = useAction();
  const prof = profile || profiles.data?.profiles[0] || '';
  const submit = () =>
    run(async () => {
      const body: Record<string, unknown> = { profileId: prof };
      if (mode === 'csr') {
        body.csr = csr;
        if (useCsrSubject) body.useSubjectFromCsr = true;
        else body.subject = subject;
      } else {
        if (pw !== pw2) throw new Error('The two PKCS#12 passwords differ.');
        body.keyType = keyType;
        body.p12Password = pw;
        body.subject = subject;
      }
      const s = sans.filter((x) => x.value.trim());
      if (s.length) body.subjectAltNames = s;
      if (validity) body.validityPeriod = validity;
      setResult(await api('POST', `/cas/${ca.id}/certificates`, body));
      setPw('');
      setPw2('');
    });
  if (result)
    return (
      <Dialog title="Certificate issued" onClose={onClose} wide>
        <Notice>
          Serial number <code data-testid="issued-serial">{result.serialNumber}</code>, valid until {fmtDate(result.notAfter)}
          {result.validityCapped ? ' (capped by the CA’s expiry)' : ''}.
        </Notice>
        <div class="actions">
          <button type="button" onClick={() => saveBlob(new Blob([result.certificate], { type: 'application/x-pem-file' }), `${result.serialNumber}.pem`)}>
            Download certificate (PEM)
          </button>
          <button type="button" onClick={() => saveBlob(new Blob([result.certificate, ...(result.chain || [])], { type: 'application/x-pem-file' }), `${result.serialNumber}-chain.pem`)}>
            Download with chain
          </button>
          <Link to={`/cas/${ca.id}/certificates/${result.serialNumber}`}>Certificate details</Link>
        </div>
        {result.pkcs12 && (
          <div class="onetime">
            <p class="warn">
              <strong>Download once.</strong> The private key exists only in this PKCS#12 file: pkiaas does not keep it. It opens with the password you chose.
            </p>
            <button type="button" class="primary" disabled={p12Taken}
              onClick={() => { saveBlob(base64ToBlob(result.pkcs12, 'application/x-pkcs12'), `${result.serialNumber}.p12`); setP12Taken(true); setResult({ ...result, pkcs12: 'taken' }); }}>
              {p12Taken ? 'PKCS#12 downloaded' : 'Download PKCS#12'}
            </button>
          </div>
        )}
        <div class="actions"><button type="button" onClick={onClose}>Close</button></div>
      </Dialog>
    );
  return (
    <Dialog title={`Issue a certificate from ${ca.id}`} onClose={onClose} wide>
      <form onSubmit={(e) => { e.preventDefault(); void submit(); }}>
        <fieldset class="radios">
          <legend>Key</legend>
          {can('cert.issue.csr') && (
            <label><input type="radio" name="mode" checked={mode === 'csr'} onChange={() => setMode('csr')} /> From a CSR (your key)</label>
          )}
          {can('cert.issue.p12') && (
            <label><input type="radio" name="mode" checked={mode === 'p12'} onChange={() => setMode('p12')} /> Server-side key (PKCS#12)</label>
          )}
        </fieldset>
        <Select label="Profile" name="profileId" value={prof} onChange={(e) => setProfile((e.target as HTMLSelectElement).value)}
          options={profiles.data?.profiles || []} />
        {mode === 'csr' ? (
          <>
            <TextArea label="CSR (PEM)" name="csr" rows={7} required value={csr} placeholder="-----BEGIN CERTIFICATE REQUEST-----"
              onInput={(e) => setCsr((e.target as HTMLTextAreaElement).value)} />
            <Check label="Use Subject from CSR" checked={useCsrSubject} onChange={setUseCsrSubject} />
            {!useCsrSubject && <Field label="Subject DN" name="subject" required value={subject} onInput={(e) => setSubject((e.target as HTMLInputElement).value)} />}
          </>
        ) : (
          <>
            <Field label="Subject DN" name="subject" required placeholder="CN=device-1,O=Example" value={subject} onInput={(e) => setSubject((e.target as HTMLInputElement).value)} />
            <Select label="Key type" name="keyType" value={keyType} onChange={(e) => setKeyType((e.target as HTMLSelectElement).value)}
              options={['EC-P256', 'EC-P384', 'EC-P521', 'RSA-2048', 'RSA-3072', 'RSA-4096']} />
            <Field label="PKCS#12 password" name="p12Password" type="password" required autoComplete="new-password" value={pw} onInput={(e) => setPw((e.target as HTMLInputElement).value)} />
            <Field label="Confirm PKCS#12 password" name="p12Password2" type="password" required autoComplete="new-password" value={pw2} onInput={(e) => setPw2((e.target as HTMLInputElement).value)} />
          </>
        )}
        <fieldset>
          <legend>Subject alternative names</legend>
          {sans.map((s, i) => (
            <div class="sanrow" key={i}>
              <Select label={`SAN ${i + 1} type`} value={s.type} options={SAN_TYPES}
                onChange={(e) => setSans(sans.map((x, j) => (j === i ? { ...x, type: (e.target as HTMLSelectElement).value } : x)))} />
              <Field label={`SAN ${i + 1} value`} value={s.value}
                onInput={(e) => setSans(sans.map((x, j) => (j === i ? { ...x, value: (e.target as HTMLInputElement).value } : x)))} />
              <button type="button" class="small" aria-label={`Remove SAN ${i + 1}`} onClick={() => setSans(sans.filter((_, j) => j !== i))}>Remove</button>
            </div>
          ))}
          <button type="button" class="small" onClick={() => setSans([...sans, { type: 'dNSName', value: '' }])}>Add SAN</button>
        </fieldset>
        <Field label="Validity period (optional, ISO 8601)" name="validityPeriod" placeholder="P90D" value={validity} onInput={(e) => setValidity((e.target as HTMLInputElement).value)} />
        <ErrorBox error={error} />
        <div class="actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy}>{busy ? 'Issuing…' : 'Issue'}</button>
        </div>
      </form>
    </Dialog>
  );
}

// ---- one certificate ----------------------------------------------------------

const REASONS = ['unspecified', 'keyCompromise', 'cACompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn', 'aACompromise'];

export function CertPage({ ca, serial }: { ca: string; serial: string }) {
  const can = useCan();
  const cert = useLoad(() => api<any>('GET', `/cas/${ca}/certificates/${serial}`), [ca, serial]);
  const [dlg, setDlg] = useState<'' | 'revoke' | 'suspend' | 'unsuspend'>('');
  const [reason, setReason] = useState('unspecified');
  const [comment, setComment] = useState('');
  const [busy, error, run] = useAction();
  const c = cert.data;
  const act = (what: string) =>
    run(async () => {
      const body: Record<string, unknown> = { publishNow: true };
      if (comment) body.comment = comment;
      if (what === 'revoke') body.reason = reason;
      await api('POST', `/cas/${ca}/certificates/${serial}/${what}`, body);
      setDlg('');
      setComment('');
      cert.reload();
    });
  return (
    <>
      <PageHead title="Certificate">
        {c && can('cert.status') && c.status !== 'revoked' && (
          <button type="button" class="danger" onClick={() => setDlg('revoke')}>Revoke</button>
        )}
        {c && can('cert.status') && c.status === 'issued' && <button type="button" onClick={() => setDlg('suspend')}>Suspend</button>}
        {c && can('cert.status') && c.status === 'suspended' && <button type="button" onClick={() => setDlg('unsuspend')}>Unsuspend</button>}
      </PageHead>
      <p><Link to={`/cas/${ca}`}>← {ca}</Link></p>
      <ErrorBox error={cert.error || (!dlg && error)} />
      {c && (
        <>
          <p>Status: <Status s={c.status} /> <span data-testid="cert-status" class="sr-only">{c.status}</span></p>
          {can('cert.download') && (
            <div class="actions">
              {[['pem', 'PEM', 'pem'], ['der', 'DER', 'cer'], ['chain', 'PEM with chain', 'chain.pem'], ['pkcs7', 'PKCS#7', 'p7b']].map(([f, label, ext]) => (
                <button key={f} type="button" disabled={busy} onClick={() => run(() => download(`/cas/${ca}/certificates/${serial}/download?format=${f}`, `${serial}.${ext}`))}>
                  Download {label}
                </button>
              ))}
            </div>
          )}
          <Details obj={c} label="Certificate fields" />
        </>
      )}
      {dlg && (
        <Dialog title={`${dlg[0].toUpperCase()}${dlg.slice(1)} certificate`} onClose={() => setDlg('')}>
          <form onSubmit={(e) => { e.preventDefault(); void act(dlg); }}>
            {dlg === 'revoke' && (
              <>
                <p><strong>Revocation is final.</strong> Relying parties learn it from the CRL and OCSP at once.</p>
                <Select label="Reason" name="reason" value={reason} onChange={(e) => setReason((e.target as HTMLSelectElement).value)} options={REASONS} />
              </>
            )}
            {dlg === 'suspend' && <p>The certificate is put on hold (certificateHold) until unsuspended.</p>}
            <Field label="Comment (optional)" name="comment" maxLength={1024} value={comment} onInput={(e) => setComment((e.target as HTMLInputElement).value)} />
            <ErrorBox error={error} />
            <div class="actions">
              <button type="button" onClick={() => setDlg('')}>Cancel</button>
              <button type="submit" class={dlg === 'revoke' ? 'danger' : 'primary'} disabled={busy}>{`Confirm ${dlg}`}</button>
            </div>
          </form>
        </Dialog>
      )}
    </>
  );
}

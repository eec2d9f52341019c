// Certificate Profiles: system and custom ones, every field, clone (form or
// raw JSON), edit and delete of custom profiles.
import { useState } from 'preact/hooks';
import { api } from '../api';
import { navigate } from '../router';
import { Check, Details, Dialog, ErrorBox, Field, Link, Loading, PageHead, Tabs, TextArea, useAction, useCan, useLoad } from '../ui';

export interface Profile {
  id: string;
  group: string;
  kind: string;
  system: boolean;
  description?: string;
  validity_period?: string;
  usages?: string[];
  [k: string]: unknown;
}

export function Profiles() {
  const can = useCan();
  const list = useLoad(() => api<{ profiles: Profile[] }>('GET', '/profiles'));
  const [search, setSearch] = useState('');
  const [which, setWhich] = useState('system');
  const [clone, setClone] = useState<Profile | null>(null);
  const all = list.data?.profiles || [];
  const shown = all.filter((p) => (which === 'system' ? p.system : !p.system) && (!search || `${p.id} ${p.group} ${p.description || ''}`.toLowerCase().includes(search.toLowerCase())));
  return (
    <>
      <PageHead title="Certificate Profiles" />
      <ErrorBox error={list.error} />
      <Tabs tabs={[['system', `System profiles (${all.filter((p) => p.system).length})`], ['custom', `Custom profiles (${all.filter((p) => !p.system).length})`]]} active={which} onChange={setWhich} />
      <Field label="Filter profiles" type="search" value={search} onInput={(e) => setSearch((e.target as HTMLInputElement).value)} />
      {list.loading && <Loading />}
      <div class="tablewrap">
        <table>
          <caption class="sr-only">{which === 'system' ? 'System' : 'Custom'} certificate profiles</caption>
          <thead><tr><th scope="col">Profile</th><th scope="col">Group</th><th scope="col">Validity</th><th scope="col">Description</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {shown.map((p) => (
              <tr key={p.id}>
                <td><Link to={`/profiles/${p.id}`}>{p.id}</Link></td>
                <td>{p.group}</td>
                <td>{p.validity_period || '—'}</td>
                <td>{p.description || ''}</td>
                <td>
                  {can('profile.manage') && p.kind === 'subscriber' && (
                    <button type="button" class="small" aria-label={`Clone ${p.id}`} onClick={() => setClone(p)}>Clone</button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && !shown.length && <p class="muted">{which === 'custom' ? 'No custom profiles yet: clone a system profile to make one.' : 'No profiles match.'}</p>}
      {clone && <CloneDialog src={clone} onClose={() => setClone(null)} onDone={(p) => { setClone(null); navigate(`/profiles/${p.id}`); }} />}
    </>
  );
}

/** The fields a clone may override, as the raw editor's starting point. */
function editable(p: Profile): Record<string, unknown> {
  const o: Record<string, unknown> = { ...p };
  delete o.id;
  delete o.system;
  delete o.kind;
  return o;
}

function CloneDialog({ src, onClose, onDone }: { src: Profile; onClose: () => void; onDone: (p: Profile) => void }) {
  const [mode, setMode] = useState('form');
  const [id, setId] = useState(`${src.id}-copy`.slice(0, 64));
  const [desc, setDesc] = useState(src.description || '');
  const [validity, setValidity] = useState(src.validity_period || '');
  const [usages, setUsages] = useState((src.usages || []).join(', '));
  const [supplySan, setSupplySan] = useState(!!src.supply_san);
  const [raw, setRaw] = useState(JSON.stringify({ id: `${src.id}-copy`.slice(0, 64), ...editable(src) }, null, 2));
  const [busy, error, run] = useAction();
  const submit = () =>
    run(async () => {
      let body: Record<string, unknown>;
      if (mode === 'form') {
        body = { id, description: desc, validity_period: validity, usages: usages.split(',').map((s) => s.trim()).filter(Boolean), supply_san: supplySan };
      } else {
        try {
          body = JSON.parse(raw);
        } catch (e) {
          throw new Error(`The JSON does not parse: ${(e as Error).message}`);
        }
        if (!body || typeof body !== 'object' || Array.isArray(body)) throw new Error('The JSON must be an object.');
      }
      onDone(await api<Profile>('POST', '/profiles', { ...body, sourceProfileId: src.id }));
    });
  return (
    <Dialog title={`Clone ${src.id}`} onClose={onClose} wide>
      <Tabs tabs={[['form', 'Form'], ['raw', 'Raw JSON']]} active={mode} onChange={setMode} />
      <form onSubmit={(e) => { e.preventDefault(); void submit(); }}>
        {mode === 'form' ? (
          <>
            <Field label="New profile id" name="id" required pattern="[a-z0-9\-]{2,64}" hint="2-64 characters of a-z, 0-9 and '-'." value={id} onInput={(e) => setId((e.target as HTMLInputElement).value)} />
            <Field label="Description" name="description" value={desc} onInput={(e) => setDesc((e.target as HTMLInputElement).value)} />
            <Field label="Validity period" name="validity_period" hint="ISO 8601 duration: P1Y, P90D, P1Y6M, PT12H." value={validity} onInput={(e) => setValidity((e.target as HTMLInputElement).value)} />
            <Field label="Usages" name="usages" hint="Key usage names and extended key usage OIDs, comma-separated." value={usages} onInput={(e) => setUsages((e.target as HTMLInputElement).value)} />
            <Check label="Copy subject CN values into DNS SANs (supply_san)" checked={supplySan} onChange={setSupplySan} />
          </>
        ) : (
          <TextArea label="Profile JSON" name="raw" rows={18} spellcheck={false} value={raw} hint="Every field of the source profile; change what you need. sourceProfileId is added for you."
            onInput={(e) => setRaw((e.target as HTMLTextAreaElement).value)} />
        )}
        <ErrorBox error={error} />
        <div class="actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy}>Create profile</button>
        </div>
      </form>
    </Dialog>
  );
}

export function ProfilePage({ id }: { id: string }) {
  const can = useCan();
  const p = useLoad(() => api<Profile>('GET', `/profiles/${id}`), [id]);
  const [clone, setClone] = useState(false);
  const [edit, setEdit] = useState(false);
  const [del, setDel] = useState(false);
  const [raw, setRaw] = useState('');
  const [busy, error, run] = useAction();
  const d = p.data;
  return (
    <>
      <PageHead title={`Profile ${id}`}>
        {d && can('profile.manage') && d.kind === 'subscriber' && <button type="button" onClick={() => setClone(true)}>Clone</button>}
        {d && can('profile.manage') && !d.system && (
          <>
            <button type="button" onClick={() => { setRaw(JSON.stringify(editable(d), null, 2)); setEdit(true); }}>Edit JSON</button>
            <button type="button" class="danger" onClick={() => setDel(true)}>Delete</button>
          </>
        )}
      </PageHead>
      <p><Link to="/profiles">← All profiles</Link></p>
      <ErrorBox error={p.error || error} />
      {d && (
        <>
          <p>{d.system ? 'System profile (read-only)' : 'Custom profile'} · {d.kind}</p>
          <Details obj={d} label="Profile fields" />
        </>
      )}
      {clone && d && <CloneDialog src={d} onClose={() => setClone(false)} onDone={(n) => { setClone(false); navigate(`/profiles/${n.id}`); }} />}
      {edit && d && (
        <Dialog title={`Edit ${id}`} onClose={() => setEdit(false)} wide>
          <form onSubmit={(e) => { e.preventDefault(); void run(async () => { await api('PUT', `/profiles/${id}`, JSON.parse(raw)); setEdit(false); p.reload(); }); }}>
            <TextArea label="Profile JSON" rows={18} spellcheck={false} value={raw} onInput={(e) => setRaw((e.target as HTMLTextAreaElement).value)} />
            <ErrorBox error={error} />
            <div class="actions">
              <button type="button" onClick={() => setEdit(false)}>Cancel</button>
              <button type="submit" class="primary" disabled={busy}>Save</button>
            </div>
          </form>
        </Dialog>
      )}
      {del && (
        <Dialog title={`Delete ${id}?`} onClose={() => setDel(false)}>
          <p>The custom profile is removed. A profile still assigned to a CA cannot be deleted.</p>
          <ErrorBox error={error} />
          <div class="actions">
            <button type="button" onClick={() => setDel(false)}>Cancel</button>
            <button type="button" class="danger" disabled={busy} onClick={() => run(async () => { await api('DELETE', `/profiles/${id}`); navigate('/profiles'); })}>Delete profile</button>
          </div>
        </Dialog>
      )}
    </>
  );
}

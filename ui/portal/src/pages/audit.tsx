// Audit reports: the partition's audit log with filters, pages, CSV export
// and a check of the hash chain.
import { useState } from 'preact/hooks';
import { api, download, q } from '../api';
import { ErrorBox, Field, Loading, Notice, PageHead, Select, fmtDate, useAction, useLoad } from '../ui';

interface Rec {
  seq: number;
  time: string;
  actor: string;
  sourceIp: string;
  action: string;
  target: string;
  result: string;
  details: unknown;
}

function iso(local: string): string | undefined {
  return local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
}

export function Audit() {
  const [f, setF] = useState({ from: '', to: '', actor: '', action: '', result: '' });
  const [applied, setApplied] = useState(f);
  const [after, setAfter] = useState<string[]>(['']);
  const params = { from: iso(applied.from), to: iso(applied.to), actor: applied.actor, action: applied.action, result: applied.result };
  const list = useLoad(() => api<{ records: Rec[]; next: number | string | null }>('GET', `/audit${q({ ...params, after: after[after.length - 1], limit: 50 })}`), [applied, after]);
  const [busy, error, run] = useAction();
  const [verified, setVerified] = useState<any>(null);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  return (
    <>
      <PageHead title="Audit Reports">
        <button type="button" disabled={busy} onClick={() => run(() => download(`/audit${q({ ...params, format: 'csv', limit: 1000 })}`, 'audit.csv'))}>Export CSV</button>
        <button type="button" disabled={busy} onClick={() => run(async () => setVerified(await api('GET', '/audit/verify')))}>Verify hash chain</button>
      </PageHead>
      <ErrorBox error={list.error || error} />
      {verified && (verified.ok ? <Notice>Hash chain intact: {verified.records} records, {verified.checkpoints} signed checkpoints.{verified.gaps > 0 ? ` Warning: ${verified.gaps} gap(s) in its protection, the first recorded at record ${verified.firstGapSeq} (records signed only after they were over an hour old: checkpoints deleted, or a crash).` : ""}</Notice> : <ErrorBox error={new Error(`Hash chain broken at ${verified.firstBadSeq}: ${verified.problem}`)} />)}
      <form class="filters" role="search" aria-label="Filter audit records" onSubmit={(e) => { e.preventDefault(); setApplied(f); setAfter(['']); }}>
        <Field label="From" type="datetime-local" value={f.from} onInput={set('from')} />
        <Field label="To" type="datetime-local" value={f.to} onInput={set('to')} />
        <Field label="Actor" value={f.actor} onInput={set('actor')} />
        <Field label="Action" placeholder="e.g. cert.revoke" value={f.action} onInput={set('action')} />
        <Select label="Result" value={f.result} onChange={set('result')} options={[['', 'Any'], 'success', 'failure', 'denied']} />
        <button type="submit">Apply filters</button>
        <p class="muted small">Export CSV writes up to 1,000 records matching the filters; narrow the time range for more.</p>
      </form>
      {list.loading && <Loading />}
      <div class="tablewrap">
        <table>
          <caption class="sr-only">Audit records</caption>
          <thead><tr><th scope="col">#</th><th scope="col">Time</th><th scope="col">Actor</th><th scope="col">Source IP</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Result</th><th scope="col">Details</th></tr></thead>
          <tbody>
            {(list.data?.records || []).map((r) => (
              <tr key={r.seq}>
                <td>{r.seq}</td><td>{fmtDate(r.time)}</td><td>{r.actor}</td><td>{r.sourceIp}</td><td>{r.action}</td><td><code>{r.target}</code></td><td>{r.result}</td>
                <td class="det">{r.details ? <code>{typeof r.details === 'string' ? r.details : JSON.stringify(r.details)}</code> : ''}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {list.data && !list.data.records.length && <p class="muted">No records match.</p>}
      <nav class="pager" aria-label="Audit pages">
        <button type="button" disabled={after.length < 2} onClick={() => setAfter(after.slice(0, -1))}>Previous page</button>
        <button type="button" disabled={list.data?.next == null} onClick={() => setAfter([...after, String(list.data!.next)])}>Next page</button>
      </nav>
    </>
  );
}

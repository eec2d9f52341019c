import { useEffect } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox, Link, PageHead, useCan, useLoad } from '../ui';

interface Inventory {
  certificates: { issued: number; purchased: number };
  cas: { active: number; purchased: number };
}

export function Home() {
  const inv = useLoad(() => api<Inventory>('GET', '/inventory'));
  const can = useCan();
  useEffect(() => {
    const t = setInterval(inv.reload, 30000); // the inventory box refreshes every 30 s
    return () => clearInterval(t);
  }, []);
  const d = inv.data;
  return (
    <>
      <PageHead title="Home" />
      <section class="card" aria-labelledby="inv-h" data-testid="inventory">
        <h2 id="inv-h">Inventory</h2>
        <ErrorBox error={inv.error} />
        {d && (
          <div class="stats">
            <div class="stat">
              <span class="n" data-testid="cas-active">{d.cas.active}</span>
              <span>active of <span data-testid="cas-purchased">{d.cas.purchased}</span> purchased CAs</span>
            </div>
            <div class="stat">
              <span class="n" data-testid="certs-issued">{d.certificates.issued}</span>
              <span>issued of <span data-testid="certs-purchased">{d.certificates.purchased}</span> purchased certificates</span>
            </div>
          </div>
        )}
        <p class="muted small">Refreshed every 30 seconds.</p>
      </section>
      <section class="card" aria-labelledby="gs-h">
        <h2 id="gs-h">Getting started</h2>
        <ol class="steps">
          {can('ca.create.root') && <li><Link to="/cas">Create a root CA</Link>, then an issuing CA under it.</li>}
          {can('profile.manage') && <li><Link to="/profiles">Clone a certificate profile</Link> to adapt validity, usages or extensions.</li>}
          {can('cert.issue.csr') && <li>Open an issuing CA on the <Link to="/cas">Certificate Authorities</Link> page and issue a certificate from a CSR or as a PKCS#12.</li>}
          {can('enroll.configure') && <li><Link to="/protocols">Configure an enrollment protocol</Link> (ACME, SCEP, EST, CMP, Intune, MDM) for automated issuance.</li>}
          {can('user.invite') && <li><Link to="/users">Invite your colleagues</Link> and give them roles.</li>}
          {can('audit.read') && <li>Review activity in the <Link to="/audit">audit reports</Link>.</li>}
          <li>
            Prefer scripts? The same API is described at <a href="/cagw/swagger-ui">/cagw/swagger-ui</a> (CA Gateway) and used by the <code>pkiaas</code> CLI.
          </li>
        </ol>
      </section>
    </>
  );
}

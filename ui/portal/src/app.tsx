// The shell: sign-in (password + TOTP, first-login enrolment), the
// partition context, navigation, and the page router.
import { useEffect, useState } from 'preact/hooks';
import { api, call, ApiError, loadSession, saveSession, setUnauthorizedHandler, supervisorToken } from './api';
import { match, navigate, useRoute } from './router';
import { ErrorBox, Field, Link, Loading, MeContext, Notice, OneTime, PageHead, useAction, type Me } from './ui';
import { Home } from './pages/home';
import { CaList, CaPage, CertPage } from './pages/cas';
import { Profiles, ProfilePage } from './pages/profiles';
import { Protocols, ProtocolPage } from './pages/protocols';
import { Users } from './pages/users';
import { CagwCredentials } from './pages/cagw';
import { Audit } from './pages/audit';
import { Supervisor, SupervisorLogin } from './pages/supervisor';

const RECENT = 'pkiaas.partitions';

function recentPartitions(): string[] {
  try {
    return JSON.parse(localStorage.getItem(RECENT) || '[]');
  } catch {
    return [];
  }
}

function remember(p: string) {
  const l = [p, ...recentPartitions().filter((x) => x !== p)].slice(0, 8);
  localStorage.setItem(RECENT, JSON.stringify(l));
}

function Login({ onIn }: { onIn: () => void }) {
  const recent = recentPartitions();
  const params = new URLSearchParams(location.search);
  const [partition, setPartition] = useState(params.get('partition') || recent[0] || '');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [stage, setStage] = useState<'login' | 'setup' | 'confirm'>('login');
  const [newPw, setNewPw] = useState('');
  const [newPw2, setNewPw2] = useState('');
  const [enrol, setEnrol] = useState<{ totpSecret: string; otpauthUri: string } | null>(null);
  const [msg, setMsg] = useState('');
  const [busy, error, run, setError] = useAction();

  const login = () =>
    run(async () => {
      try {
        const r = await call('POST', '/api/v1/login', { partition, email, password, code });
        saveSession({ partition: r.partition, email: r.email, csrf: r.csrfToken });
        remember(r.partition);
        onIn();
      } catch (e) {
        if (e instanceof ApiError && e.code === 'enrolment_required' && /setup/.test(e.message)) {
          setStage('setup');
          setMsg('First sign-in: choose your own password, then set up your authenticator app.');
          return;
        }
        throw e;
      }
    });
  const setup = () =>
    run(async () => {
      if (newPw !== newPw2) throw new Error('The two new passwords differ.');
      const r = await call('POST', '/api/v1/login/setup', { partition, email, password, newPassword: newPw });
      setEnrol(r);
      setPassword(newPw);
      setCode('');
      setStage('confirm');
      setMsg('');
    });
  const confirm = () =>
    run(async () => {
      await call('POST', '/api/v1/login/setup/confirm', { partition, email, password, code });
      setStage('login');
      setEnrol(null);
      setCode('');
      setMsg('Your account is set up. Sign in with your new password and the next code from your authenticator app.');
    });

  return (
    <main class="login" id="main">
      <h1>pkiaas portal</h1>
      <form
        class="card"
        aria-label={stage === 'login' ? 'Sign in' : 'Account setup'}
        onSubmit={(e) => {
          e.preventDefault();
          setError(null);
          void (stage === 'login' ? login() : stage === 'setup' ? setup() : confirm());
        }}
      >
        <h2>{stage === 'login' ? 'Sign in' : stage === 'setup' ? 'Choose your password' : 'Set up two-factor authentication'}</h2>
        {msg && <Notice>{msg}</Notice>}
        <ErrorBox error={error} />
        {stage === 'login' && (
          <>
            <Field label="Partition (account id)" name="partition" required value={partition} list="recent-partitions" autoComplete="organization"
              onInput={(e) => setPartition((e.target as HTMLInputElement).value.trim())} />
            <datalist id="recent-partitions">
              {recent.map((p) => (
                <option key={p} value={p} />
              ))}
            </datalist>
            <Field label="Email" name="email" type="email" required autoComplete="username" value={email}
              onInput={(e) => setEmail((e.target as HTMLInputElement).value.trim())} />
            <Field label="Password" name="password" type="password" required autoComplete="current-password" value={password}
              onInput={(e) => setPassword((e.target as HTMLInputElement).value)} />
            <Field label="Authenticator code" name="code" inputMode="numeric" pattern="[0-9]{6}" autoComplete="one-time-code" value={code}
              hint="Six digits from your authenticator app (leave empty on your very first sign-in)."
              onInput={(e) => setCode((e.target as HTMLInputElement).value.trim())} />
            <button type="submit" class="primary" disabled={busy}>Sign in</button>
          </>
        )}
        {stage === 'setup' && (
          <>
            <Field label="New password" name="newPassword" type="password" required minLength={12} autoComplete="new-password" value={newPw}
              hint="12 to 128 characters." onInput={(e) => setNewPw((e.target as HTMLInputElement).value)} />
            <Field label="Repeat new password" name="newPassword2" type="password" required autoComplete="new-password" value={newPw2}
              onInput={(e) => setNewPw2((e.target as HTMLInputElement).value)} />
            <button type="submit" class="primary" disabled={busy}>Continue</button>
          </>
        )}
        {stage === 'confirm' && enrol && (
          <>
            <p>Add this account to your authenticator app (RFC 6238: SHA-1, 6 digits, 30 s), then enter the code it shows.</p>
            <OneTime items={[['TOTP secret', enrol.totpSecret], ['otpauth URI', enrol.otpauthUri]]} />
            <Field label="Authenticator code" name="code" inputMode="numeric" pattern="[0-9]{6}" required autoComplete="one-time-code" value={code}
              onInput={(e) => setCode((e.target as HTMLInputElement).value.trim())} />
            <button type="submit" class="primary" disabled={busy}>Confirm</button>
          </>
        )}
      </form>
      <p class="muted">
        Operators of the service: <Link to="/supervisor">Supervisor sign-in</Link>
      </p>
    </main>
  );
}

/** The page an invitation link opens (/invite/{token}): password, then TOTP. */
function Invite({ token }: { token: string }) {
  const [pw, setPw] = useState('');
  const [pw2, setPw2] = useState('');
  const [code, setCode] = useState('');
  const [enrol, setEnrol] = useState<{ totpSecret: string; otpauthUri: string } | null>(null);
  const [done, setDone] = useState<{ partition: string; email: string } | null>(null);
  const [busy, error, run] = useAction();
  const t = encodeURIComponent(token);
  return (
    <main class="login" id="main">
      <h1>Join pkiaas</h1>
      <form class="card" aria-label="Accept invitation"
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            if (!enrol) {
              if (pw !== pw2) throw new Error('The two passwords differ.');
              setEnrol(await call('POST', `/api/v1/invitations/${t}/accept`, { password: pw }));
            } else {
              const r = await call('POST', `/api/v1/invitations/${t}/confirm`, { code });
              setDone(r);
            }
          });
        }}>
        <ErrorBox error={error} />
        {done ? (
          <Notice>
            Your account {done.email} is active. <a href={`/portal/?partition=${encodeURIComponent(done.partition)}`}>Sign in</a>.
          </Notice>
        ) : !enrol ? (
          <>
            <h2>Choose your password</h2>
            <Field label="Password" name="password" type="password" required minLength={12} autoComplete="new-password" value={pw}
              hint="12 to 128 characters." onInput={(e) => setPw((e.target as HTMLInputElement).value)} />
            <Field label="Repeat password" name="password2" type="password" required autoComplete="new-password" value={pw2}
              onInput={(e) => setPw2((e.target as HTMLInputElement).value)} />
            <button type="submit" class="primary" disabled={busy}>Continue</button>
          </>
        ) : (
          <>
            <h2>Set up two-factor authentication</h2>
            <p>Add this account to your authenticator app, then enter the code it shows.</p>
            <OneTime items={[['TOTP secret', enrol.totpSecret], ['otpauth URI', enrol.otpauthUri]]} />
            <Field label="Authenticator code" name="code" inputMode="numeric" pattern="[0-9]{6}" required autoComplete="one-time-code" value={code}
              onInput={(e) => setCode((e.target as HTMLInputElement).value.trim())} />
            <button type="submit" class="primary" disabled={busy}>Activate account</button>
          </>
        )}
      </form>
    </main>
  );
}

const NAV: [string, string, string | null][] = [
  ['/', 'Home', null],
  ['/cas', 'Certificate Authorities', 'ca.browse'],
  ['/profiles', 'Certificate Profiles', 'profile.browse'],
  ['/protocols', 'Enrollment Protocols', 'enroll.read'],
  ['/users', 'User Management', 'user.roles'],
  ['/cagw', 'CAGW Credentials', 'cagw.credentials'],
  ['/audit', 'Audit Reports', 'audit.read'],
];

function Shell({ me, path, onOut }: { me: Me; path: string; onOut: () => void }) {
  const [open, setOpen] = useState(false);
  const [busy, error, run] = useAction();
  const signOut = () =>
    run(async () => {
      try {
        await call('POST', '/api/v1/logout');
      } finally {
        saveSession(null);
        onOut();
      }
    });
  let page;
  let m: Record<string, string> | null;
  if (path === '/' || path === '') page = <Home />;
  else if (path === '/cas') page = <CaList />;
  else if ((m = match('/cas/:ca/certificates/:serial', path))) page = <CertPage ca={m.ca} serial={m.serial} />;
  else if ((m = match('/cas/:ca', path))) page = <CaPage id={m.ca} />;
  else if (path === '/profiles') page = <Profiles />;
  else if ((m = match('/profiles/:id', path))) page = <ProfilePage id={m.id} />;
  else if (path === '/protocols') page = <Protocols />;
  else if ((m = match('/protocols/:id', path))) page = <ProtocolPage id={m.id} />;
  else if (path === '/users') page = <Users />;
  else if (path === '/cagw') page = <CagwCredentials />;
  else if (path === '/audit') page = <Audit />;
  else
    page = (
      <>
        <PageHead title="Not found" />
        <p>
          There is no page here. <Link to="/">Home</Link>
        </p>
      </>
    );
  const section = '/' + (path.split('/')[1] || '');
  return (
    <MeContext.Provider value={me}>
      <a class="skip" href="#main">Skip to content</a>
      <header class="top">
        <button type="button" class="menu" aria-expanded={open} aria-controls="nav" onClick={() => setOpen(!open)}>
          Menu
        </button>
        <span class="brand">pkiaas</span>
        <span class="ctx" title="Partition">
          Partition <strong data-testid="partition">{me.partition}</strong>
        </span>
        <span class="who">
          {me.email || me.actor} <span class="muted">({me.roles.join(', ') || 'no roles'})</span>
        </span>
        <button type="button" onClick={signOut} disabled={busy} title="Sign out and choose another partition">
          Switch partition
        </button>
        <button type="button" onClick={signOut} disabled={busy}>
          Sign out
        </button>
      </header>
      <ErrorBox error={error} />
      <div class="layout">
        <nav id="nav" class={open ? 'open' : ''} aria-label="Main">
          <ul>
            {NAV.filter(([, , op]) => !op || me.operations.includes(op)).map(([to, label]) => (
              <li key={to}>
                <Link to={to} aria-current={section === to ? 'page' : undefined}>
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1} onClick={() => setOpen(false)}>
          {page}
        </main>
      </div>
    </MeContext.Provider>
  );
}

export function App() {
  const path = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  const [state, setState] = useState<'checking' | 'out' | 'in'>(loadSession() ? 'checking' : 'out');
  const [, forceSup] = useState(0);

  const loadMe = async () => {
    try {
      setMe(await api<Me>('GET', '/me'));
      setState('in');
    } catch {
      saveSession(null);
      setState('out');
    }
  };
  useEffect(() => {
    setUnauthorizedHandler(() => {
      saveSession(null);
      setMe(null);
      setState('out');
    });
    // the entry page at / (and subscription URLs /?partition=...) become /portal/, keeping the query
    if (location.pathname === '/') history.replaceState(null, '', `/portal/${location.search}`);
    if (loadSession()) void loadMe();
  }, []);

  const inv = match('/invite/:token', path);
  if (inv) return <Invite token={inv.token} />;
  if (path === '/supervisor' || path.startsWith('/supervisor/')) {
    if (!supervisorToken()) return <SupervisorLogin onIn={() => forceSup((x) => x + 1)} />;
    return <Supervisor path={path} onOut={() => forceSup((x) => x + 1)} />;
  }
  if (state === 'checking') return <Loading what="Checking your session" />;
  if (state === 'out' || !me)
    return (
      <Login
        onIn={() => {
          void loadMe();
        }}
      />
    );
  return (
    <Shell
      me={me}
      path={path}
      onOut={() => {
        setMe(null);
        setState('out');
        navigate('/', true);
      }}
    />
  );
}


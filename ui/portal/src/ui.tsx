// Shared building blocks: links, fields, dialogs, tabs, one-time secrets,
// and the caller's permissions (from GET /me) for role-aware rendering.
import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import { errorText } from './api';
import { BASE, navigate } from './router';

export interface Me {
  partition: string;
  actor: string;
  kind: string;
  email?: string;
  roles: string[];
  operations: string[];
}

export const MeContext = createContext<Me | null>(null);

/** May the caller perform this permission-matrix operation (docs/roles.md)? */
export function useCan(): (op: string) => boolean {
  const me = useContext(MeContext);
  return (op: string) => !!me && me.operations.includes(op);
}

export function Link(props: { to: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' | undefined }) {
  return (
    <a
      href={BASE + props.to}
      class={props.class}
      aria-current={props['aria-current']}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(props.to);
      }}
    >
      {props.children}
    </a>
  );
}

let idSeq = 0;
export function useId(prefix = 'f'): string {
  const r = useRef<string>();
  if (!r.current) r.current = `${prefix}-${++idSeq}`;
  return r.current;
}

type Handlers = { onInput?: (e: Event) => void; onChange?: (e: Event) => void };
type InputProps = Handlers & { label: string; hint?: string; [attr: string]: any };

export function Field({ label, hint, ...rest }: InputProps) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <input id={id} aria-describedby={hint ? `${id}-h` : undefined} {...(rest as any)} />
      {hint && (
        <small id={`${id}-h`} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

export function TextArea({ label, hint, ...rest }: InputProps) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <textarea id={id} aria-describedby={hint ? `${id}-h` : undefined} {...(rest as any)} />
      {hint && (
        <small id={`${id}-h`} class="hint">
          {hint}
        </small>
      )}
    </div>
  );
}

export function Select({
  label,
  options,
  ...rest
}: Handlers & { label: string; options: (string | [string, string])[]; [attr: string]: any }) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      <select id={id} {...(rest as any)}>
        {options.map((o) => {
          const [v, t] = Array.isArray(o) ? o : [o, o];
          return (
            <option key={v} value={v}>
              {t}
            </option>
          );
        })}
      </select>
    </div>
  );
}

export function Check({ label, checked, onChange }: { label: string; checked: boolean; onChange: (v: boolean) => void }) {
  const id = useId();
  return (
    <div class="check">
      <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange((e.target as HTMLInputElement).checked)} />
      <label for={id}>{label}</label>
    </div>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  return (
    <div class="alert error" role="alert">
      {errorText(error)}
    </div>
  );
}

export function Notice({ children }: { children: ComponentChildren }) {
  return (
    <div class="alert ok" role="status">
      {children}
    </div>
  );
}

/** A modal dialog: focus moves in, Tab stays in, Escape closes, focus returns. */
export function Dialog({ title, onClose, children, wide }: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  const id = useId('dlg');
  useEffect(() => {
    const prev = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>('input,select,textarea,button:not(.close)');
    (first || el)?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.preventDefault();
        onClose();
      } else if (e.key === 'Tab' && el) {
        const f = Array.from(el.querySelectorAll<HTMLElement>('a[href],button:not([disabled]),input,select,textarea,[tabindex="0"]'));
        if (!f.length) return;
        const a = f[0];
        const z = f[f.length - 1];
        if (e.shiftKey && document.activeElement === a) {
          e.preventDefault();
          z.focus();
        } else if (!e.shiftKey && document.activeElement === z) {
          e.preventDefault();
          a.focus();
        }
      }
    };
    document.addEventListener('keydown', onKey);
    return () => {
      document.removeEventListener('keydown', onKey);
      prev?.focus?.();
    };
  }, []);
  return (
    <div class="backdrop">
      <div class={`dialog${wide ? ' wide' : ''}`} role="dialog" aria-modal="true" aria-labelledby={id} ref={ref} tabIndex={-1}>
        <div class="dialog-head">
          <h2 id={id}>{title}</h2>
          <button type="button" class="close" aria-label="Close dialog" onClick={onClose}>
            ×
          </button>
        </div>
        {children}
      </div>
    </div>
  );
}

export function Tabs({ tabs, active, onChange }: { tabs: [string, string][]; active: string; onChange: (k: string) => void }) {
  const refs = useRef<(HTMLButtonElement | null)[]>([]);
  return (
    <div class="tabs" role="tablist">
      {tabs.map(([k, label], i) => (
        <button
          key={k}
          type="button"
          role="tab"
          ref={(el) => { refs.current[i] = el; }}
          aria-selected={active === k}
          tabIndex={active === k ? 0 : -1}
          onClick={() => onChange(k)}
          onKeyDown={(e) => {
            const d = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
            if (!d) return;
            e.preventDefault();
            const n = (i + d + tabs.length) % tabs.length;
            onChange(tabs[n][0]);
            refs.current[n]?.focus();
          }}
        >
          {label}
        </button>
      ))}
    </div>
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="small"
      aria-label={`${label} to clipboard`}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          const t = document.createElement('textarea');
          t.value = text;
          document.body.appendChild(t);
          t.select();
          document.execCommand('copy');
          t.remove();
        }
        setDone(true);
        setTimeout(() => setDone(false), 2000);
      }}
    >
      {done ? 'Copied' : label}
    </button>
  );
}

/** A value with a copy button (URLs, ids). */
export function CopyValue({ label, value }: { label: string; value: string }) {
  return (
    <div class="copyvalue">
      <span class="label">{label}</span>
      <code data-testid={`value-${label}`}>{value}</code>
      <CopyButton text={value} label={`Copy ${label}`} />
    </div>
  );
}

/** Secrets the server returns once (EAB keys, passwords, PKCS#12 passwords). */
export function OneTime({ items, children }: { items: [string, string][]; children?: ComponentChildren }) {
  return (
    <div class="onetime" role="region" aria-label="One-time secret">
      <p class="warn">
        <strong>Shown once.</strong> Copy these values now: pkiaas stores them sealed and can never show them again.
      </p>
      {items.map(([k, v]) => (
        <CopyValue key={k} label={k} value={v} />
      ))}
      {children}
    </div>
  );
}

/** Loads data; `reload` re-runs the loader. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[] = []): { data: T | undefined; error: unknown; loading: boolean; reload: () => void } {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    fn().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (!live) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [...deps, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { data, error, loading, reload };
}

/** Runs an action, keeping its busy state and error for the form. */
export function useAction(): [boolean, unknown, (f: () => Promise<void>) => Promise<void>, (e: unknown) => void] {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = async (f: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await f();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return [busy, error, run, setError];
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p class="muted" role="status">
      {what}…
    </p>
  );
}

export function fmtDate(s?: string | null): string {
  if (!s) return '—';
  return s.replace('T', ' ').replace('Z', ' UTC');
}

export function Status({ s }: { s: string }) {
  return <span class={`badge st-${s}`}>{s}</span>;
}

/** A definition list of every field of an object (nested values as JSON). */
export function Details({ obj, label }: { obj: Record<string, unknown>; label: string }) {
  return (
    <dl class="details" aria-label={label}>
      {Object.entries(obj).map(([k, v]) => (
        <div class="row" key={k}>
          <dt>{k}</dt>
          <dd>{v === null || v === undefined ? '—' : typeof v === 'object' ? <code>{JSON.stringify(v)}</code> : String(v)}</dd>
        </div>
      ))}
    </dl>
  );
}

export function PageHead({ title, children }: { title: string; children?: ComponentChildren }) {
  useEffect(() => {
    document.title = `${title} · pkiaas`;
  }, [title]);
  return (
    <div class="pagehead">
      <h1>{title}</h1>
      <div class="actions">{children}</div>
    </div>
  );
}

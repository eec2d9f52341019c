// The admin API client. A user session is the HttpOnly cookie set by
// POST /api/v1/login plus the CSRF token it returned (kept in
// sessionStorage, so it dies with the tab); the supervisor uses a bearer
// token instead (also sessionStorage only).

export class ApiError extends Error {
  status: number;
  code: string;
  field?: string;
  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export interface Session {
  partition: string;
  email: string;
  csrf: string;
}

const KEY = 'pkiaas.session';
const SUP_KEY = 'pkiaas.supervisor';

export function loadSession(): Session | null {
  try {
    const s = sessionStorage.getItem(KEY);
    return s ? (JSON.parse(s) as Session) : null;
  } catch {
    return null;
  }
}

export function saveSession(s: Session | null) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

export function supervisorToken(): string | null {
  return sessionStorage.getItem(SUP_KEY);
}

export function setSupervisorToken(t: string | null) {
  if (t) sessionStorage.setItem(SUP_KEY, t);
  else sessionStorage.removeItem(SUP_KEY);
}

type Listener = () => void;
let onUnauthorized: Listener = () => {};
export function setUnauthorizedHandler(l: Listener) {
  onUnauthorized = l;
}

/** A readable message for an error, with the 403 case spelled out. */
export function errorText(e: unknown): string {
  if (e instanceof ApiError) {
    if (e.status === 403 && e.code === 'forbidden')
      return `Not allowed: your roles do not permit this action. (${e.message})`;
    return e.message || `${e.status} ${e.code}`;
  }
  return e instanceof Error ? e.message : String(e);
}

async function toError(r: Response): Promise<ApiError> {
  let code = 'error';
  let message = `${r.status} ${r.statusText}`;
  let field: string | undefined;
  try {
    const j = await r.json();
    if (j && j.error) {
      code = j.error.code || code;
      message = j.error.message || message;
      field = j.error.field || undefined;
    }
  } catch {
    /* not JSON */
  }
  return new ApiError(r.status, code, message, field);
}

async function send(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const h: Record<string, string> = { Accept: 'application/json', ...headers };
  const s = loadSession();
  if (s && method !== 'GET') h['X-CSRF-Token'] = s.csrf;
  let payload: string | undefined;
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const r = await fetch(url, { method, headers: h, body: payload, credentials: 'same-origin' });
  if (!r.ok) {
    const e = await toError(r);
    if (r.status === 401 && !url.startsWith('/api/v1/login')) onUnauthorized();
    throw e;
  }
  return r;
}

/** Any /api/v1 URL (login, invitations, ...), JSON in and out. */
export async function call<T = any>(method: string, url: string, body?: unknown): Promise<T> {
  const r = await send(method, url, body);
  return (await r.json()) as T;
}

function partitionUrl(path: string): string {
  const s = loadSession();
  if (!s) throw new ApiError(401, 'unauthorized', 'not signed in');
  return `/api/v1/partitions/${encodeURIComponent(s.partition)}${path}`;
}

/** A call under /api/v1/partitions/{partition of the session}. */
export function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  return call<T>(method, partitionUrl(path), body);
}

/** Fetches a file of the partition API and hands it to the browser as a download. */
export async function download(path: string, fileName: string) {
  const r = await send('GET', partitionUrl(path));
  saveBlob(await r.blob(), fileName);
}

export function saveBlob(blob: Blob, fileName: string) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export function base64ToBlob(b64: string, type: string): Blob {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type });
}

/** Supervisor calls: bearer token, no cookie. */
export async function supervisor<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const t = supervisorToken();
  const r = await fetch(`/api/v1/supervisor${path}`, {
    method,
    headers: {
      Accept: 'application/json',
      Authorization: `Bearer ${t || ''}`,
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    credentials: 'omit',
  });
  if (!r.ok) throw await toError(r);
  return (await r.json()) as T;
}

export function q(params: Record<string, string | number | boolean | undefined | null>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, String(v));
  const s = u.toString();
  return s ? `?${s}` : '';
}

/**
 * The one redaction of credentials carried in URLs. Every text that may hold a URL on its way to
 * storage, a log line, the status report or a response passes through `redact`: `lastError`
 * messages of jobs, drain run errors, log lines, error responses and the operator CLI's output.
 *
 * What is removed: the userinfo of any `scheme://user:password@host` URL (webhook URLs with basic
 * credentials, `mongodb://` connection strings), replaced by `***`; the host, path and everything
 * else stay, so the message still says where a request went.
 */
export function redact(text: string): string {
  return text.replace(USERINFO, '$1***@');
}

/** `scheme://` then everything up to the last `@` before the host (a password may contain `@`). */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'<>\\]*@/gi;

/** A URL with its userinfo removed and its query string and fragment dropped (they may carry tokens). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

import { parseUsername } from '@tacit/client';

export type Route = { view: 'list' } | { view: 'admin' } | { view: 'settings' } | { view: 'chat'; contact: string } | { view: 'safety'; contact: string };

/** `#/c/<user>`, `#/c/<user>/safety`, `#/admin` and `#/settings`; anything else (including hostile input) is the list. */
export function parseRoute(hash: string): Route {
  if (hash === '#/admin') return { view: 'admin' };
  if (hash === '#/settings') return { view: 'settings' };
  const m = /^#\/c\/([^/]{1,64})(\/safety)?$/.exec(hash);
  if (!m || m[1] === undefined) return { view: 'list' };
  let contact: string;
  try {
    contact = parseUsername(decodeURIComponent(m[1]));
  } catch {
    return { view: 'list' };
  }
  return m[2] ? { view: 'safety', contact } : { view: 'chat', contact };
}

export function href(r: Route): string {
  switch (r.view) {
    case 'list':
      return '#/';
    case 'admin':
      return '#/admin';
    case 'settings':
      return '#/settings';
    case 'chat':
      return `#/c/${encodeURIComponent(r.contact)}`;
    case 'safety':
      return `#/c/${encodeURIComponent(r.contact)}/safety`;
  }
}

export function navigate(r: Route): void {
  location.hash = href(r);
}

import { parseUsername } from '@tacit/client';

/** `contact` is a username, or a group's conversation id (`g:<id>`). */
export type Route =
  | { view: 'list' }
  | { view: 'admin' }
  | { view: 'settings' }
  | { view: 'devices' }
  | { view: 'new-group' }
  | { view: 'chat'; contact: string }
  | { view: 'safety'; contact: string }
  | { view: 'members'; contact: string };

/**
 * `#/c/<user>`, `#/c/<user>/safety`, `#/g/<group id>`, `#/g/<group id>/members`, `#/new-group`,
 * `#/admin` and `#/settings`; anything else (including hostile input) is the list.
 */
export function parseRoute(hash: string): Route {
  if (hash === '#/admin') return { view: 'admin' };
  if (hash === '#/settings') return { view: 'settings' };
  if (hash === '#/devices') return { view: 'devices' };
  if (hash === '#/new-group') return { view: 'new-group' };
  const g = /^#\/g\/([0-9a-f]{32})(\/members)?$/.exec(hash);
  if (g) return g[2] ? { view: 'members', contact: `g:${g[1]}` } : { view: 'chat', contact: `g:${g[1]}` };
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
    case 'devices':
      return '#/devices';
    case 'new-group':
      return '#/new-group';
    case 'members':
      return `#/g/${r.contact.slice(2)}/members`;
    case 'chat':
      return r.contact.startsWith('g:') ? `#/g/${r.contact.slice(2)}` : `#/c/${encodeURIComponent(r.contact)}`;
    case 'safety':
      return `#/c/${encodeURIComponent(r.contact)}/safety`;
  }
}

export function navigate(r: Route): void {
  location.hash = href(r);
}

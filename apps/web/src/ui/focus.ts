/**
 * Moving the focus to what a view just showed. The HTML `autofocus` attribute cannot do it in a
 * page that renders its views in place: browsers honour it once per document (a later element
 * with it is not focused), and a ref callback written inline runs on every render, taking the
 * focus back from wherever the user moved it (from Cancel to Delete, say, when a message arrives).
 */
import { useLayoutEffect, useRef, type MutableRef } from 'preact/hooks';

/**
 * A ref whose element takes the focus in the commit that shows it (not after paint, so keys typed
 * at once land in it) whenever `when` changes to a truthy value: `true` for "when mounted", a
 * mode or a name for "when this opens". `select` also selects a field's text.
 */
export function useFocusOn<T extends HTMLElement>(when: unknown = true, select = false): MutableRef<T | null> {
  const ref = useRef<T | null>(null);
  useLayoutEffect(() => {
    const el = ref.current;
    if (!when || el === null) return;
    el.focus();
    if (select && (el instanceof HTMLInputElement || el instanceof HTMLTextAreaElement)) el.select();
  }, [when]);
  return ref;
}

/**
 * Shown instead of the app when the page is not a secure context (plain http:// from another
 * machine): browsers give WebCrypto only to https:// pages and http://localhost, so tacit could
 * neither make nor open keys there. Says why and the way out, in plain words.
 */
export function InsecureContext({ href, port }: { href: string; port: string }) {
  return (
    <main class="card notice" aria-labelledby="insecure-title">
      <h1 id="insecure-title">tacit needs a secure (https) address</h1>
      <p>
        This page was opened at <strong data-testid="insecure-address">{href}</strong>, a plain <code>http://</code> address on another machine. Browsers give web
        pages the cryptography tacit needs (WebCrypto) only on secure addresses: those starting with <code>https://</code>, or <code>http://localhost</code> on the
        server’s own machine. Here tacit cannot create or open your keys, so it stops instead. Nothing was sent or stored.
      </p>
      <h2>How to fix it</h2>
      <ul>
        <li>If someone else runs the server: ask them for its <code>https://</code> address and open that.</li>
        <li>
          If you run the server: give it a certificate (<code>TACIT_TLS_CERT</code> and <code>TACIT_TLS_KEY</code>) or put it behind a reverse proxy that serves
          HTTPS (Caddy, nginx); see “HTTPS” in docs/OPERATIONS.md. Then open its <code>https://</code> address.
        </li>
        <li>
          To try it on the server’s own machine, open <code>http://localhost:{port}</code>.
        </li>
      </ul>
    </main>
  );
}

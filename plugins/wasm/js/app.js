// Minimal wasi:http/proxy handler for Troupe, built with ComponentizeJS
// (StarlingMonkey). StarlingMonkey maps the exported
// wasi:http/incoming-handler onto the service-worker style `fetch` event.
//
// GET  -> 200 text/plain "hello from javascript at <path>"
// else -> 405 text/plain "method not allowed"
addEventListener('fetch', (event) => {
  const req = event.request;
  const url = new URL(req.url);
  const headers = { 'content-type': 'text/plain' };
  if (req.method !== 'GET') {
    event.respondWith(new Response('method not allowed\n', { status: 405, headers }));
    return;
  }
  event.respondWith(
    new Response(`hello from javascript at ${url.pathname}${url.search}\n`, { status: 200, headers }),
  );
});

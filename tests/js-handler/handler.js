// A wasi:http handler in JavaScript, as `wasmtime serve` runs it once compiled with
// componentize-js: StarlingMonkey's fetch event answers wasi:http/incoming-handler.
addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  event.respondWith((async () => {
    const body = await event.request.text();
    console.log(`js handling ${event.request.method} ${url.pathname}`);
    const answer = { js: true, method: event.request.method, path: url.pathname + url.search, body };
    return new Response(JSON.stringify(answer), {
      status: event.request.method === 'POST' ? 201 : 200,
      headers: { 'content-type': 'application/json' },
    });
  })());
});

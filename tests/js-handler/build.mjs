// Compiles handler.js into a wasi:http component: node build.mjs OUT.wasm
//
// componentize-js needs the WIT of the world it targets. Its engine implements
// wasi:http/incoming-handler@0.2.10; the WIT comes from the wasi:* 0.2.12 definitions its own
// dependency jco ships, named 0.2.10 (the interfaces the proxy world uses are the same).
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdtemp, mkdir, readdir, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT.wasm');
  process.exit(2);
}
const builtin = join(here, 'node_modules/@bytecodealliance/jco/lib/wit/builtin/0.2.12');
const wit = await mkdtemp(join(tmpdir(), 'gust-js-wit-'));
try {
  for (const pkg of await readdir(builtin)) {
    await mkdir(join(wit, 'deps', pkg), { recursive: true });
    for (const file of await readdir(join(builtin, pkg))) {
      const text = await readFile(join(builtin, pkg, file), 'utf8');
      await writeFile(join(wit, 'deps', pkg, file), text.replaceAll('@0.2.12', '@0.2.10'));
    }
  }
  await writeFile(
    join(wit, 'world.wit'),
    'package gust:test;\n\nworld handler {\n  include wasi:http/proxy@0.2.10;\n}\n',
  );
  const { component } = await componentize({
    sourcePath: join(here, 'handler.js'),
    witPath: wit,
    worldName: 'handler',
  });
  await writeFile(out, component);
} finally {
  await rm(wit, { recursive: true, force: true });
}

// Gust's Node.js launcher: OpenWhisk's action loop. The first line on stdin initializes
// ({"code"} source or {"dir"} folder, "main", "env", "concurrency"); every later line runs
// the entry point once ({"value", "env"}). Each answer is one JSON line on fd 3; after it, a
// sentinel line on stdout and stderr closes the activation's logs.
//
// With "concurrency" above 1, activations run at once: each line carries an "id", its answer
// is "<id> <json>", and every line it writes to stdout or stderr (through process.stdout,
// process.stderr or console, followed across awaits by AsyncLocalStorage) is prefixed with
// "\u001e<id> ", its sentinel too.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const Module = require('module');
const readline = require('readline');

const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n';
const TAG = '\u001e';
let entry = null;
let concurrent = false;
let activation = null;

function answer(obj, id) {
  let line;
  try {
    line = JSON.stringify(obj);
  } catch (e) {
    line = JSON.stringify({ error: 'The action returned a value that is not JSON: ' + e.message });
  }
  if (line === undefined) line = 'null';
  if (id !== undefined) {
    fs.writeSync(3, id + ' ' + line + '\n');
    process.stdout.endActivation(id);
    process.stderr.endActivation(id);
    return;
  }
  fs.writeSync(3, line + '\n');
  // Through the same streams as console.log: when a pipe is full Node queues writes, and a
  // direct write to fd 1 would overtake what the function printed.
  process.stdout.write(SENTINEL);
  process.stderr.write(SENTINEL);
}

// Prefixes each line written to `stream` with the id of the activation that wrote it; a line
// left unfinished waits for its activation's next write or end.
function tagLines(stream) {
  const { StringDecoder } = require('string_decoder');
  const write = stream.write.bind(stream);
  const partial = new Map();
  // Per activation, so a character split across two writes of bytes stays whole.
  const decoders = new Map();
  stream.write = function (chunk, encoding, callback) {
    const id = activation.getStore();
    if (id === undefined) return write(chunk, encoding, callback);
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    let piece;
    if (typeof chunk === 'string') {
      piece = encoding && !/^utf-?8$/i.test(encoding)
        ? Buffer.from(chunk, encoding).toString('utf8') : chunk;
    } else {
      if (!decoders.has(id)) decoders.set(id, new StringDecoder('utf8'));
      piece = decoders.get(id).write(Buffer.from(chunk));
    }
    const text = (partial.get(id) || '') + piece;
    const lines = text.split('\n');
    const rest = lines.pop();
    if (rest) partial.set(id, rest); else partial.delete(id);
    if (lines.length === 0) {
      if (callback) process.nextTick(callback);
      return true;
    }
    return write(lines.map((l) => TAG + id + ' ' + l + '\n').join(''), callback);
  };
  stream.endActivation = function (id) {
    const decoder = decoders.get(id);
    decoders.delete(id);
    let rest = partial.get(id);
    if (decoder) {
      const tail = decoder.end();
      if (tail) rest = (rest || '') + tail;
    }
    partial.delete(id);
    write((rest !== undefined ? TAG + id + ' ' + rest + '\n' : '') + TAG + id + ' ' + SENTINEL);
  };
}

function setEnv(env) {
  for (const [k, v] of Object.entries(env || {})) process.env[k] = String(v);
}

function init(msg) {
  setEnv(msg.env);
  if (msg.concurrency > 1) {
    concurrent = true;
    activation = new (require('async_hooks').AsyncLocalStorage)();
    tagLines(process.stdout);
    tagLines(process.stderr);
  }
  const main = msg.main || 'main';
  let exported;
  if (typeof msg.code === 'string') {
    const filename = '/tmp/action.js';
    const mod = new Module(filename, null);
    mod.filename = filename;
    mod.paths = Module._nodeModulePaths('/tmp');
    // OpenWhisk runs plain source whose entry point is a top-level function, or exports it.
    const wrapped = Module.wrap(
      msg.code + `\n;return (typeof ${main} === 'function') ? ${main} : undefined;`);
    const fn = vm.runInThisContext(wrapped, { filename });
    const local = fn.call(mod.exports, mod.exports, Module.createRequire(filename), mod, filename, '/tmp');
    exported = local || mod.exports[main] || (typeof mod.exports === 'function' && main === 'main' ? mod.exports : undefined);
  } else {
    process.chdir(msg.dir);
    const mod = require(msg.dir);
    exported = mod[main] || (typeof mod === 'function' && main === 'main' ? mod : undefined);
  }
  if (typeof exported !== 'function') {
    throw new Error(`the action has no function named '${main}'`);
  }
  entry = exported;
}

// An error as OpenWhisk's Node.js runtime reports a rejection: an Error as its name, message
// and stack; any other value as it is; a rejection without a value as {}.
function serializeError(e) {
  if (!e) return {};
  if (e instanceof Error) {
    const out = { name: e.name, message: e.message, stack: e.stack };
    for (const k of Object.keys(e)) out[k] = e[k];
    return out;
  }
  return e;
}

async function run(msg) {
  setEnv(msg.env);
  let result;
  try {
    result = entry(msg.value);
  } catch (e) {
    // Thrown while running: the activation fails with the error's text.
    return { error: 'An error has occurred: ' + e };
  }
  try {
    result = await result;
  } catch (e) {
    // A rejected Promise is a result: {error: <what it was rejected with>}.
    return { error: serializeError(e) };
  }
  if (result === undefined || result === null) result = {};
  return result;
}

let chain = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  // The chain keeps lines in order; with concurrency it waits for the initialization only,
  // not for each activation to end.
  chain = chain.then(async () => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch (e) {
      return answer({ error: 'bad message: ' + e.message });
    }
    if (entry === null) {
      try {
        init(msg);
        answer({ ok: true });
      } catch (e) {
        answer({ error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
      }
      return;
    }
    if (concurrent) {
      activation.run(msg.id, () => run(msg).then((result) => answer(result, msg.id)));
      return;
    }
    answer(await run(msg));
  });
});
lines.on('close', () => process.exit(0));

// Gust's Node.js runtime client for Lambda handlers (decision 0025). It speaks the Lambda
// Runtime API at $AWS_LAMBDA_RUNTIME_API as AWS's managed runtimes do: load the handler
// named by $_HANDLER (file.function; the file a CommonJS .js/.cjs or an ES module .mjs, or
// .js under "type": "module") from $LAMBDA_TASK_ROOT, then loop: GET /next, call
// handler(event, context[, callback]), POST /response or /error. Before each answer it
// writes a sentinel line on stdout and stderr, which closes that invocation's logs for Gust.
'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');
const { pathToFileURL } = require('url');

const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n';
const API = process.env.AWS_LAMBDA_RUNTIME_API;
const [HOST, PORT] = API.split(':');
const PREFIX = '/2018-06-01/runtime';

// A keep-alive HTTP/1.1 client of the Runtime API, just enough for it (one call at a time;
// the answers have a Content-Length): Node's http client costs more per call than the
// handler of a small function.
let socket = null;
let buffered = Buffer.alloc(0);
let waiting = null;

function connect() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: HOST, port: Number(PORT), noDelay: true });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
    s.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (waiting) waiting();
    });
    s.on('close', () => {
      if (socket === s) socket = null;
      if (waiting) waiting(new Error('the Runtime API closed the connection'));
    });
  });
}

// The next complete answer in `buffered`: [status, headers, body], or null.
function parse() {
  const end = buffered.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const lines = buffered.subarray(0, end).toString('latin1').split('\r\n');
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const length = Number(headers['content-length'] || 0);
  if (buffered.length < end + 4 + length) return null;
  const body = buffered.subarray(end + 4, end + 4 + length);
  buffered = buffered.subarray(end + 4 + length);
  return [Number(lines[0].split(' ')[1]), headers, body];
}

async function call(method, p, body, headers) {
  let head = `${method} ${PREFIX}${p} HTTP/1.1\r\nHost: ${API}\r\n`;
  for (const [k, v] of Object.entries(headers || {})) head += `${k}: ${v}\r\n`;
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
  if (body !== undefined) head += `Content-Length: ${payload.length}\r\n`;
  const data = Buffer.concat([Buffer.from(head + '\r\n', 'latin1'), payload]);
  for (let attempt = 0; ; attempt++) {
    try {
      if (!socket) {
        socket = await connect();
        buffered = Buffer.alloc(0);
      }
      socket.write(data);
      return await new Promise((resolve, reject) => {
        waiting = (err) => {
          if (err) {
            waiting = null;
            return reject(err);
          }
          const answer = parse();
          if (answer) {
            waiting = null;
            resolve({ status: answer[0], headers: answer[1], body: answer[2] });
          }
        };
        waiting();
      });
    } catch (e) {
      if (socket) socket.destroy();
      socket = null;
      if (attempt) throw e;
    }
  }
}

function endLogs() {
  // Through the same streams as console.log, so the sentinel follows what was printed.
  process.stdout.write(SENTINEL);
  process.stderr.write(SENTINEL);
}

function errorBody(e) {
  const err = e instanceof Error ? e : new Error(String(e));
  return JSON.stringify({
    errorType: err.name || 'Error',
    errorMessage: err.message,
    trace: String(err.stack || '').split('\n'),
  });
}

function isModule(file) {
  if (file.endsWith('.mjs')) return true;
  if (file.endsWith('.cjs')) return false;
  // Under a package.json saying "type": "module", the nearest one up to the task root.
  let dir = path.dirname(file);
  const root = process.env.LAMBDA_TASK_ROOT || '/action';
  for (;;) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
      return pkg.type === 'module';
    } catch (_) {}
    if (dir === root || dir === path.dirname(dir)) return false;
    dir = path.dirname(dir);
  }
}

async function loadHandler() {
  const root = process.env.LAMBDA_TASK_ROOT || '/action';
  const handler = process.env._HANDLER || '';
  const dot = handler.lastIndexOf('.');
  if (dot <= 0) {
    const e = new Error(`Bad handler '${handler}': expected file.function`);
    e.name = 'Runtime.MalformedHandlerName';
    throw e;
  }
  const base = path.resolve(root, handler.slice(0, dot));
  const name = handler.slice(dot + 1);
  const file = ['.js', '.mjs', '.cjs'].map((x) => base + x).find((f) => fs.existsSync(f));
  if (!file) {
    const e = new Error(`Cannot find module '${handler.slice(0, dot)}'`);
    e.name = 'Runtime.ImportModuleError';
    throw e;
  }
  const mod = isModule(file) ? await import(pathToFileURL(file).href) : require(file);
  const fn = mod[name] ?? (mod.default && mod.default[name]);
  if (typeof fn !== 'function') {
    const e = new Error(`${handler} is undefined or not exported`);
    e.name = 'Runtime.HandlerNotFound';
    throw e;
  }
  return fn;
}

function context(requestId, deadline, arn) {
  const env = process.env;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: arn,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: requestId,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
}

// Runs the handler: a promise it returns, or (taking a callback) the callback it calls.
function run(fn, event, ctx) {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err, value) => {
      if (settled) return;
      settled = true;
      if (err !== null && err !== undefined) reject(err);
      else resolve(value);
    };
    ctx.done = done;
    ctx.succeed = (v) => done(null, v);
    ctx.fail = (e) => done(e);
    try {
      const out = fn(event, ctx, done);
      if (out && typeof out.then === 'function') out.then((v) => done(null, v), (e) => done(e));
      else if (fn.length < 3) done(null, out);
    } catch (e) {
      done(e);
    }
  });
}

async function main() {
  let fn;
  try {
    fn = await loadHandler();
  } catch (e) {
    console.error(e);
    endLogs();
    await call('POST', '/init/error', errorBody(e), {
      'Content-Type': 'application/json',
      'Lambda-Runtime-Function-Error-Type': e.name,
    });
    process.exit(1);
  }
  endLogs();
  for (;;) {
    const { headers, body } = await call('GET', '/invocation/next');
    const id = headers['lambda-runtime-aws-request-id'];
    const deadline = Number(headers['lambda-runtime-deadline-ms'] || 0);
    const arn = headers['lambda-runtime-invoked-function-arn'];
    const trace = headers['lambda-runtime-trace-id'];
    if (trace) process.env._X_AMZN_TRACE_ID = trace;
    else delete process.env._X_AMZN_TRACE_ID;
    let p;
    let out;
    try {
      const event = body.length ? JSON.parse(body.toString('utf8')) : null;
      const value = await run(fn, event, context(id, deadline, arn));
      out = JSON.stringify(value === undefined ? null : value);
      p = `/invocation/${id}/response`;
    } catch (e) {
      console.error(e);
      out = errorBody(e);
      p = `/invocation/${id}/error`;
    }
    endLogs();
    await call('POST', p, out, { 'Content-Type': 'application/json' });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

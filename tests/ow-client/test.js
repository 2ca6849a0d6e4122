// Drives a running Gust with the official OpenWhisk JavaScript client (`openwhisk` on npm),
// through the behaviours the client's own integration tests (test/integration/*.test.js)
// expect of an OpenWhisk: actions, packages, namespaces, triggers, rules, fires, feeds and
// the /whisk.system catalog.
//
// Environment:
//   OW_APIHOST    the API host, e.g. http://127.0.0.1:3233 (the client keeps an http:// scheme)
//   OW_AUTH       the key, uuid:key
//   OW_ACTION     an existing action of the namespace built from tests/functions `hello`
//                 (answers {greeting: "Hello, <name>!"}); default `hello`
//   OW_NAMESPACE  the namespace the key owns; default `guest`
//
// Run: node tests/ow-client/test.js. Exits 0 when every check passed; otherwise prints each
// failed check (the call, what was expected, what came back) and exits 1. The script cleans
// up before and after itself, so it can run again against the same server.

'use strict'

const assert = require('node:assert/strict')
const util = require('node:util')
const openwhisk = require('openwhisk')

const APIHOST = need('OW_APIHOST')
const AUTH = need('OW_AUTH')
const ACTION = process.env.OW_ACTION || 'hello'
const NS = process.env.OW_NAMESPACE || 'guest'

const ow = openwhisk({ apihost: APIHOST, api_key: AUTH, ignore_certs: true })

const HEX32 = /^[0-9a-f]{32}$/
const failures = []

function need (name) {
  const v = process.env[name]
  if (!v) {
    console.error(`${name} is not set`)
    process.exit(2)
  }
  return v
}

// Deep strict equality; the message shows both sides.
function eq (actual, expected, label) {
  assert.deepStrictEqual(actual, expected,
    `${label}: got ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`)
}

function match (actual, re, label) {
  assert.match(String(actual), re, `${label}: got ${JSON.stringify(actual)}, expected ${re}`)
}

// What an error says, with the response body the client kept.
function describe (err) {
  let s = err && err.message ? err.message : util.inspect(err)
  if (err && err.statusCode !== undefined) s += ` [statusCode ${err.statusCode}]`
  if (err && err.error !== undefined && !(err instanceof assert.AssertionError)) {
    s += `\n    body: ${JSON.stringify(err.error)}`
  }
  return s
}

const SKIPPED = Symbol('skipped')

// A group of dependent checks (a function returning SKIPPED when it could not run): the first failure ends the group and is recorded; the next
// group runs regardless.
async function section (name, fn) {
  try {
    const skipped = await fn()
    console.log(`${skipped === SKIPPED ? 'skip' : 'ok  '} ${name}`)
  } catch (err) {
    failures.push(`${name}: ${describe(err)}`)
    console.log(`FAIL ${name}: ${describe(err)}`)
  }
}

// Runs one client call, labelling any rejection with the call.
async function call (label, promise) {
  try {
    return await promise
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err
    const e = new Error(`${label} rejected: ${err && err.message}`)
    e.statusCode = err && err.statusCode
    e.error = err && err.error
    throw e
  }
}

// Expects `promise` to reject; returns the error.
async function rejects (label, promise) {
  let value
  try {
    value = await promise
  } catch (err) {
    return err
  }
  assert.fail(`${label} resolved with ${JSON.stringify(value)}; expected a rejection`)
}

// Best effort: deletes, ignoring errors (a missing entity).
async function quietly (promise) {
  try { await promise } catch (_) {}
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// Polls activations.get until the record of `id` is readable (30 s at most).
async function record (id) {
  const deadline = Date.now() + 30000
  let last
  while (Date.now() < deadline) {
    try {
      return await ow.activations.get({ name: id })
    } catch (err) {
      last = err
      if (err.statusCode !== 404) break
    }
    await sleep(250)
  }
  throw new Error(`activations.get({name: '${id}'}) found no record within 30 s: ${describe(last)}`)
}

const names = list => list.map(x => x.name)

async function cleanUp () {
  await quietly(ow.rules.delete({ name: 'owc_rule' }))
  await quietly(ow.feeds.delete({
    name: '/whisk.system/alarms/alarm',
    trigger: 'owc_feed_trigger',
  }))
  for (const t of ['owc_trigger', 'owc_fire', 'owc_feed_trigger']) {
    await quietly(ow.triggers.delete({ name: t }))
  }
  await quietly(ow.packages.delete({ name: 'owc_pkg' }))
  await quietly(ow.actions.delete({ name: 'owc_node' }))
}

async function main () {
  console.log(`openwhisk ${require('openwhisk/package.json').version} against ${APIHOST}, ` +
    `namespace ${NS}, action ${ACTION}`)
  await cleanUp()

  await section('namespaces', async () => {
    const list = await call('namespaces.list()', ow.namespaces.list())
    assert.ok(Array.isArray(list), `namespaces.list() answered ${JSON.stringify(list)}; expected an array`)
    assert.ok(list.includes(NS), `namespaces.list() answered ${JSON.stringify(list)}; expected it to include "${NS}"`)
    const all = await call('namespaces.get()', ow.namespaces.get())
    eq(Object.keys(all).sort(), ['actions', 'packages', 'rules', 'triggers'], 'namespaces.get(): keys')
    for (const k of ['actions', 'packages', 'triggers', 'rules']) {
      assert.ok(Array.isArray(all[k]), `namespaces.get().${k} is ${JSON.stringify(all[k])}; expected an array`)
    }
    assert.ok(names(all.actions).includes(ACTION),
      `namespaces.get().actions ${JSON.stringify(names(all.actions))} lacks ${ACTION}`)
  })

  await section('actions', async () => {
    const list = await call('actions.list()', ow.actions.list())
    assert.ok(Array.isArray(list), `actions.list() answered ${JSON.stringify(list)}`)
    const listed = list.find(a => a.name === ACTION)
    assert.ok(listed, `actions.list() ${JSON.stringify(names(list))} lacks ${ACTION}`)
    eq(listed.namespace, NS, 'actions.list(): namespace of the action')

    const action = await call(`actions.get({name: '${ACTION}'})`, ow.actions.get({ name: ACTION }))
    eq(action.name, ACTION, 'actions.get: name')
    eq(action.namespace, NS, 'actions.get: namespace')
    eq(typeof action.version, 'string', 'actions.get: version')

    const result = await call('actions.invoke({blocking, result})',
      ow.actions.invoke({ name: ACTION, blocking: true, result: true, params: { name: 'Odin' } }))
    eq(result, { greeting: 'Hello, Odin!' }, 'actions.invoke({blocking: true, result: true})')

    const activation = await call('actions.invoke({blocking})',
      ow.actions.invoke({ name: ACTION, blocking: true }))
    match(activation.activationId || '', HEX32, 'blocking invoke: activationId')
    eq(activation.response && activation.response.success, true, 'blocking invoke: response.success')
    eq(activation.response.result, { greeting: 'Hello, World!' }, 'blocking invoke: response.result')

    const started = await call('actions.invoke() (non-blocking)', ow.actions.invoke({ name: ACTION }))
    match(started.activationId || '', HEX32,
      `non-blocking invoke answered ${JSON.stringify(started)}; expected an activationId`)
    const rec = await record(started.activationId)
    eq(rec.name, ACTION, 'activations.get: name')
    eq(rec.namespace, NS, 'activations.get: namespace')
    eq(rec.response.result, { greeting: 'Hello, World!' }, 'activations.get: response.result')
  })

  await section('actions: a nodejs:20 action', async () => {
    let created
    try {
      created = await ow.actions.create({
        name: 'owc_node',
        action: 'function main (p) { return { payload: "Hello " + p.name } }',
        kind: 'nodejs:20',
      })
    } catch (err) {
      if (err.statusCode === 400) {
        console.log(`     skipped: nodejs:20 is not offered (400: ${err.message})`)
        return SKIPPED
      }
      throw new Error(`actions.create({kind: 'nodejs:20'}) rejected: ${describe(err)}; ` +
        'expected success or 400 (kind not supported)')
    }
    eq(created.name, 'owc_node', 'actions.create: name')
    const result = await call('actions.invoke(owc_node)',
      ow.actions.invoke({ name: 'owc_node', blocking: true, result: true, params: { name: 'Thor' } }))
    eq(result, { payload: 'Hello Thor' }, 'nodejs:20 action result')
    await call('actions.delete(owc_node)', ow.actions.delete({ name: 'owc_node' }))
  })

  await section('packages', async () => {
    const created = await call("packages.create({name: 'owc_pkg'})",
      ow.packages.create({ name: 'owc_pkg', package: { parameters: [{ key: 'colour', value: 'blue' }] } }))
    eq(created.name, 'owc_pkg', 'packages.create: name')
    eq(created.namespace, NS, 'packages.create: namespace')
    eq(created.parameters, [{ key: 'colour', value: 'blue' }], 'packages.create: parameters')

    const got = await call("packages.get({name: 'owc_pkg'})", ow.packages.get({ name: 'owc_pkg' }))
    eq(got.name, 'owc_pkg', 'packages.get: name')
    eq(got.namespace, NS, 'packages.get: namespace')

    const list = await call('packages.list()', ow.packages.list())
    assert.ok(Array.isArray(list), `packages.list() answered ${JSON.stringify(list)}`)
    assert.ok(names(list).includes('owc_pkg'), `packages.list() ${JSON.stringify(names(list))} lacks owc_pkg`)

    await call("packages.delete({name: 'owc_pkg'})", ow.packages.delete({ name: 'owc_pkg' }))
    const err = await rejects('packages.get of the deleted package', ow.packages.get({ name: 'owc_pkg' }))
    eq(err.statusCode, 404, `packages.get of the deleted package: ${describe(err)}`)
  })

  await section('triggers', async () => {
    const list = await call('triggers.list()', ow.triggers.list())
    assert.ok(Array.isArray(list), `triggers.list() answered ${JSON.stringify(list)}; expected an array`)
    list.forEach(t => eq(t.namespace, NS, `triggers.list(): namespace of ${t.name}`))

    const missing = await rejects("triggers.get({name: 'glorfindel'})", ow.triggers.get({ name: 'glorfindel' }))
    eq(missing.statusCode, 404, `triggers.get of a missing trigger: ${describe(missing)}`)

    const created = await call("triggers.create({name: 'owc_trigger'})", ow.triggers.create({ name: 'owc_trigger' }))
    eq(created.name, 'owc_trigger', 'triggers.create: name')
    eq(created.namespace, NS, 'triggers.create: namespace')
    eq(created.annotations, [], 'triggers.create: annotations')
    eq(created.version, '0.0.1', 'triggers.create: version')
    eq(created.limits, {}, 'triggers.create: limits')

    const got = await call("triggers.get({name: 'owc_trigger'})", ow.triggers.get({ name: 'owc_trigger' }))
    eq(got.name, 'owc_trigger', 'triggers.get: name')
    eq(got.namespace, NS, 'triggers.get: namespace')

    const listed = await call('triggers.list()', ow.triggers.list())
    assert.ok(names(listed).includes('owc_trigger'), `triggers.list() ${JSON.stringify(names(listed))} lacks owc_trigger`)

    const updated = await call("triggers.update({name: 'owc_trigger', trigger: {}})",
      ow.triggers.update({ name: 'owc_trigger', trigger: {} }))
    eq(updated.version, '0.0.2', 'triggers.update: version')

    await call("triggers.delete({name: 'owc_trigger'})", ow.triggers.delete({ name: 'owc_trigger' }))
    const gone = await rejects('triggers.get of the deleted trigger', ow.triggers.get({ name: 'owc_trigger' }))
    eq(gone.statusCode, 404, `triggers.get of the deleted trigger: ${describe(gone)}`)
  })

  await section('rules and fires', async () => {
    await call("triggers.create({name: 'owc_fire'})", ow.triggers.create({ name: 'owc_fire' }))
    const missing = await rejects("rules.get({name: 'glorfindel'})", ow.rules.get({ name: 'glorfindel' }))
    eq(missing.statusCode, 404, `rules.get of a missing rule: ${describe(missing)}`)

    const rule = await call('rules.create(owc_rule)', ow.rules.create({
      name: 'owc_rule',
      action: `/${NS}/${ACTION}`,
      trigger: `/${NS}/owc_fire`,
    }))
    eq(rule.name, 'owc_rule', 'rules.create: name')
    eq(rule.namespace, NS, 'rules.create: namespace')
    eq(rule.action, { path: NS, name: ACTION }, 'rules.create: action')
    eq(rule.trigger, { path: NS, name: 'owc_fire' }, 'rules.create: trigger')

    let got = await call("rules.get({name: 'owc_rule'})", ow.rules.get({ name: 'owc_rule' }))
    eq(got.name, 'owc_rule', 'rules.get: name')
    eq(got.namespace, NS, 'rules.get: namespace')
    eq(got.status, 'active', 'rules.get: status of a new rule')

    const fired = await call("triggers.invoke({name: 'owc_fire', params: {x: 1}})",
      ow.triggers.invoke({ name: 'owc_fire', params: { x: 1 } }))
    assert.ok(fired && typeof fired === 'object', `triggers.invoke answered ${JSON.stringify(fired)}`)
    match(fired.activationId || '', HEX32,
      `triggers.invoke answered ${JSON.stringify(fired)}; expected an activationId`)

    const trig = await record(fired.activationId)
    eq(trig.name, 'owc_fire', 'trigger activation: name')
    eq(trig.namespace, NS, 'trigger activation: namespace')
    eq(trig.response && trig.response.result, { x: 1 }, 'trigger activation: response.result')
    assert.ok(Array.isArray(trig.logs) && trig.logs.length === 1,
      `trigger activation: logs ${JSON.stringify(trig.logs)}; expected one line per rule`)
    let log
    try {
      log = JSON.parse(trig.logs[0])
    } catch (e) {
      assert.fail(`trigger activation: log line ${JSON.stringify(trig.logs[0])} is not JSON`)
    }
    eq(log.rule, `${NS}/owc_rule`, `trigger activation log ${trig.logs[0]}: rule`)
    eq(log.action, `${NS}/${ACTION}`, `trigger activation log ${trig.logs[0]}: action`)
    eq(log.success, true, `trigger activation log ${trig.logs[0]}: success`)
    match(log.activationId || '', HEX32, `trigger activation log ${trig.logs[0]}: activationId`)

    const act = await record(log.activationId)
    eq(act.name, ACTION, 'the activation the rule started: name')
    eq(act.cause, fired.activationId, "the activation the rule started: cause (the trigger's activation id)")
    eq(act.response.result, { greeting: 'Hello, World!' }, 'the activation the rule started: result')

    await call("rules.disable({name: 'owc_rule'})", ow.rules.disable({ name: 'owc_rule' }))
    got = await call('rules.get after disable', ow.rules.get({ name: 'owc_rule' }))
    eq(got.status, 'inactive', 'rules.get: status after rules.disable')

    const idle = await call('triggers.invoke with the rule disabled',
      ow.triggers.invoke({ name: 'owc_fire', params: { x: 2 } }))
    // OpenWhisk answers 204 No Content; the client resolves with the empty body (a Buffer).
    const empty = idle === undefined || idle === null || idle === '' ||
      (Buffer.isBuffer(idle) && idle.length === 0)
    assert.ok(empty && !(idle && idle.activationId),
      `triggers.invoke with no active rule answered ${JSON.stringify(idle)}; expected an empty body (204)`)

    await call("rules.enable({name: 'owc_rule'})", ow.rules.enable({ name: 'owc_rule' }))
    got = await call('rules.get after enable', ow.rules.get({ name: 'owc_rule' }))
    eq(got.status, 'active', 'rules.get: status after rules.enable')

    const list = await call('rules.list()', ow.rules.list())
    assert.ok(Array.isArray(list), `rules.list() answered ${JSON.stringify(list)}`)
    assert.ok(names(list).includes('owc_rule'), `rules.list() ${JSON.stringify(names(list))} lacks owc_rule`)
    list.forEach(r => eq(r.namespace, NS, `rules.list(): namespace of ${r.name}`))

    const all = await call('namespaces.get()', ow.namespaces.get())
    assert.ok(names(all.triggers).includes('owc_fire'), 'namespaces.get().triggers lacks owc_fire')
    assert.ok(names(all.rules).includes('owc_rule'), 'namespaces.get().rules lacks owc_rule')
  })

  await section('the /whisk.system catalog', async () => {
    const echoed = await call('actions.invoke(/whisk.system/utils/echo)', ow.actions.invoke({
      name: '/whisk.system/utils/echo', blocking: true, result: true, params: { a: 1 },
    }))
    eq(echoed, { a: 1 }, '/whisk.system/utils/echo result')
    const sorted = await call('actions.invoke(/whisk.system/utils/sort)', ow.actions.invoke({
      name: '/whisk.system/utils/sort', blocking: true, result: true, params: { lines: ['b', 'a'] },
    }))
    eq(sorted, { lines: ['a', 'b'], length: 2 }, '/whisk.system/utils/sort result')
  })

  await section('feeds (/whisk.system/alarms/alarm)', async () => {
    await call("triggers.create({name: 'owc_feed_trigger'})", ow.triggers.create({ name: 'owc_feed_trigger' }))
    const feed = {
      name: '/whisk.system/alarms/alarm',
      trigger: 'owc_feed_trigger',
      params: { cron: '*/8 * * * * *', trigger_payload: { name: 'Odin', place: 'Asgard' } },
    }
    const created = await call('feeds.create', ow.feeds.create(feed))
    match(created.activationId || '', HEX32,
      `feeds.create answered ${JSON.stringify(created)}; expected a full activation`)
    eq(created.response && created.response.success, true,
      `feeds.create: response.success of ${JSON.stringify(created.response)}`)

    const read = await call('feeds.get (READ)', ow.feeds.get(feed))
    eq(read.response && read.response.success, true,
      `feeds.get: response.success of ${JSON.stringify(read.response)}`)
    const r = read.response.result || {}
    eq(r.config && r.config.cron, '*/8 * * * * *', `feeds.get: result.config.cron of ${JSON.stringify(r)}`)
    eq(r.status && r.status.active, true, `feeds.get: result.status.active of ${JSON.stringify(r)}`)

    const updated = await call('feeds.update', ow.feeds.update(feed))
    eq(updated.response && updated.response.success, true,
      `feeds.update: response.success of ${JSON.stringify(updated.response)}`)

    const deleted = await call('feeds.delete', ow.feeds.delete(feed))
    eq(deleted.response && deleted.response.success, true,
      `feeds.delete: response.success of ${JSON.stringify(deleted.response)}`)

    const bad = await rejects("feeds.create with cron '***'", ow.feeds.create({
      name: '/whisk.system/alarms/alarm',
      trigger: 'owc_feed_trigger',
      params: { cron: '***' },
    }))
    assert.ok(String(bad.message).includes("cron pattern '***' is not valid"),
      `feeds.create with cron '***' rejected with ${describe(bad)}; expected "cron pattern '***' is not valid"`)
  })

  await section('feeds of an event source (/whisk.system/webhooks/github)', async () => {
    await call("triggers.create({name: 'owc_hook'})", ow.triggers.create({ name: 'owc_hook' }))
    const feed = { name: '/whisk.system/webhooks/github', trigger: 'owc_hook', params: { secret: 'owc-secret' } }
    const created = await call('feeds.create (webhook)', ow.feeds.create(feed))
    eq(created.response && created.response.success, true,
      `feeds.create (webhook): response.success of ${JSON.stringify(created.response)}`)
    const url = (created.response.result || {}).url || ''
    assert.ok(url.endsWith('/hooks/guest/owc_hook'), `feeds.create (webhook): result.url of ${url}`)
    const read = await call('feeds.get (webhook READ)', ow.feeds.get(feed))
    const r = read.response.result || {}
    eq(r.config && r.config.secret, '********', `feeds.get (webhook): the secret is hidden in ${JSON.stringify(r)}`)
    const updated = await call('feeds.update (webhook)', ow.feeds.update({ ...feed, params: { secret: 'owc-other' } }))
    eq(updated.response && updated.response.success, true,
      `feeds.update (webhook): response.success of ${JSON.stringify(updated.response)}`)
    const deleted = await call('feeds.delete (webhook)', ow.feeds.delete(feed))
    eq(deleted.response && deleted.response.success, true,
      `feeds.delete (webhook): response.success of ${JSON.stringify(deleted.response)}`)
    const bad = await rejects('feeds.create (webhook) with an unknown parameter', ow.feeds.create({
      name: '/whisk.system/webhooks/github', trigger: 'owc_hook', params: { secert: 'x' },
    }))
    assert.ok(String(bad.message).includes('secert'),
      `feeds.create with 'secert' rejected with ${describe(bad)}; expected a text naming it`)
    await call("triggers.delete({name: 'owc_hook'})", ow.triggers.delete({ name: 'owc_hook' }))
  })

  await section('clean-up (a trigger deleted before its rule)', async () => {
    await call("triggers.delete({name: 'owc_fire'})", ow.triggers.delete({ name: 'owc_fire' }))
    await call("rules.delete({name: 'owc_rule'}) after its trigger was deleted", ow.rules.delete({ name: 'owc_rule' }))
    const gone = await rejects('rules.get of the deleted rule', ow.rules.get({ name: 'owc_rule' }))
    eq(gone.statusCode, 404, `rules.get of the deleted rule: ${describe(gone)}`)
    await call("triggers.delete({name: 'owc_feed_trigger'})", ow.triggers.delete({ name: 'owc_feed_trigger' }))
    const all = await call('namespaces.get()', ow.namespaces.get())
    const left = [...all.triggers, ...all.rules, ...all.packages].map(x => x.name).filter(n => n.startsWith('owc_'))
    eq(left, [], 'entities left after clean-up')
  })

  await cleanUp()
  if (failures.length > 0) {
    console.log(`\n${failures.length} failed:`)
    failures.forEach(f => console.log(`- ${f}`))
    process.exit(1)
  }
  console.log('\nall passed')
}

main().catch(err => {
  console.error(`unexpected: ${describe(err)}\n${err && err.stack}`)
  process.exit(1)
})

# Gust's Python launcher: OpenWhisk's action loop. The first line on stdin initializes
# ({"code"} source or {"dir"} folder, "main", "env"); every later line runs the entry point
# once ({"value", "env"}). Each answer is one JSON line on fd 3; after it, a sentinel line on
# stdout and stderr closes the activation's logs. The Python zygote (zygote.py) runs this
# file without its last line, then `main()` in each instance it forks.
import glob
import json
import os
import runpy
import sys
import traceback

SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n'
out = None


def answer(obj):
    try:
        # ASCII: a lone surrogate in a string cannot be written as UTF-8.
        line = json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError) as e:
        line = json.dumps({'error': 'The action returned a value that is not JSON: %s' % e})
    sys.stdout.flush()
    sys.stderr.flush()
    out.write(line + '\n')
    out.flush()
    sys.stdout.write(SENTINEL)
    sys.stderr.write(SENTINEL)
    sys.stdout.flush()
    sys.stderr.flush()


def set_env(env):
    for k, v in (env or {}).items():
        os.environ[k] = str(v)


def init(msg):
    set_env(msg.get('env'))
    main = msg.get('main') or 'main'
    if isinstance(msg.get('code'), str):
        scope = {'__name__': '__main__', '__file__': '/tmp/__main__.py'}
        exec(compile(msg['code'], '/tmp/__main__.py', 'exec'), scope)
    else:
        folder = msg['dir']
        os.chdir(folder)
        for site in glob.glob(os.path.join(folder, 'virtualenv', 'lib', 'python*', 'site-packages')):
            sys.path.insert(0, site)
        sys.path.insert(0, folder)
        scope = runpy.run_path(os.path.join(folder, '__main__.py'), run_name='__gust_main__')
    fn = scope.get(main)
    if not callable(fn):
        raise Exception("the action has no function named '%s'" % main)
    return fn


def main():
    global out
    out = os.fdopen(3, 'w', buffering=1, encoding='utf-8')
    entry = None
    for line in sys.stdin:
        try:
            msg = json.loads(line)
        except ValueError as e:
            answer({'error': 'bad message: %s' % e})
            continue
        if entry is None:
            try:
                entry = init(msg)
                answer({'ok': True})
            except BaseException as e:
                traceback.print_exc()
                answer({'error': '%s: %s' % (type(e).__name__, e)})
            continue
        set_env(msg.get('env'))
        try:
            result = entry(msg.get('value', {}))
            if result is None:
                result = {}
        except BaseException as e:
            traceback.print_exc()
            result = {'error': 'An error has occurred: %s: %s' % (type(e).__name__, e)}
        answer(result)


main()

# Gust's Python runtime client for Lambda handlers (decision 0025). It speaks the Lambda
# Runtime API at $AWS_LAMBDA_RUNTIME_API as AWS's managed runtimes do: import the handler
# named by $_HANDLER (module.function) from $LAMBDA_TASK_ROOT, then loop: GET /next, call
# handler(event, context), POST /response or /error. Before each answer it writes a sentinel
# line on stdout and stderr, which closes that invocation's logs for Gust.
import http.client
import importlib
import json
import os
import sys
import time
import traceback

SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n'
API = os.environ['AWS_LAMBDA_RUNTIME_API']
PREFIX = '/2018-06-01/runtime'


def end_logs():
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout.write(SENTINEL)
    sys.stderr.write(SENTINEL)
    sys.stdout.flush()
    sys.stderr.flush()


class Api:
    def __init__(self):
        self.conn = None

    def call(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                host, port = API.rsplit(':', 1)
                self.conn = http.client.HTTPConnection(host, int(port))
            try:
                self.conn.request(method, PREFIX + path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                return r, r.read()
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise


def error_body(e, request_id=None):
    body = {
        'errorMessage': str(e),
        'errorType': type(e).__name__,
        'stackTrace': traceback.format_tb(e.__traceback__),
    }
    if request_id:
        body['requestId'] = request_id
    return json.dumps(body).encode()


class CognitoIdentity:
    cognito_identity_id = None
    cognito_identity_pool_id = None


class LambdaContext:
    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get('AWS_LAMBDA_FUNCTION_NAME')
        self.function_version = os.environ.get('AWS_LAMBDA_FUNCTION_VERSION')
        self.memory_limit_in_mb = os.environ.get('AWS_LAMBDA_FUNCTION_MEMORY_SIZE')
        self.log_group_name = os.environ.get('AWS_LAMBDA_LOG_GROUP_NAME')
        self.log_stream_name = os.environ.get('AWS_LAMBDA_LOG_STREAM_NAME')
        self.identity = CognitoIdentity()
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(int(self._deadline_ms - time.time() * 1000), 0)


def load_handler():
    task_root = os.environ.get('LAMBDA_TASK_ROOT', '/action')
    if task_root not in sys.path:
        sys.path.insert(0, task_root)
    handler = os.environ.get('_HANDLER', '')
    try:
        module_name, function_name = handler.rsplit('.', 1)
    except ValueError:
        raise ValueError("Bad handler '%s': expected module.function" % handler)
    module = importlib.import_module(module_name.replace('/', '.'))
    fn = getattr(module, function_name, None)
    if fn is None:
        raise AttributeError("Handler '%s' missing on module '%s'" % (function_name, module_name))
    return fn


def main():
    api = Api()
    try:
        handler = load_handler()
    except Exception as e:
        traceback.print_exc()
        end_logs()
        kind = 'Runtime.ImportModuleError' if isinstance(e, ImportError) else 'Runtime.HandlerNotFound'
        body = json.loads(error_body(e))
        body['errorType'] = kind
        api.call('POST', '/init/error', json.dumps(body).encode(),
                 {'Lambda-Runtime-Function-Error-Type': kind})
        sys.exit(1)
    end_logs()
    while True:
        r, event_bytes = api.call('GET', '/invocation/next')
        request_id = r.getheader('Lambda-Runtime-Aws-Request-Id')
        deadline = int(r.getheader('Lambda-Runtime-Deadline-Ms') or '0')
        arn = r.getheader('Lambda-Runtime-Invoked-Function-Arn')
        trace = r.getheader('Lambda-Runtime-Trace-Id')
        if trace:
            os.environ['_X_AMZN_TRACE_ID'] = trace
        else:
            os.environ.pop('_X_AMZN_TRACE_ID', None)
        context = LambdaContext(request_id, deadline, arn)
        try:
            event = json.loads(event_bytes) if event_bytes else None
            result = json.dumps(handler(event, context), allow_nan=False).encode()
            path = '/invocation/%s/response' % request_id
        except Exception as e:
            traceback.print_exc()
            result = error_body(e, request_id)
            path = '/invocation/%s/error' % request_id
        end_logs()
        api.call('POST', path, result, {'Content-Type': 'application/json'})


main()

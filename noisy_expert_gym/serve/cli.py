"""`neg serve-expert`: a problem's noisy expert over HTTP, in the OpenAI completions convention vLLM uses.

    neg serve-expert NoisyModAdd-v0 --env-kw m=5 --env-kw eta=0.2 --max-queries 100000

(The routes, the request subset and the counting: :mod:`noisy_expert_gym.serve`.)
"""

from __future__ import annotations

import argparse
import sys

from noisy_expert_gym.utils import parse_kv


def _cmd_serve_expert(args: argparse.Namespace) -> int:
    from noisy_expert_gym.problems import make_problem
    from noisy_expert_gym.serve.http import ExpertHTTPServer
    from noisy_expert_gym.serve.service import ExpertService

    problem = make_problem(args.env, **parse_kv(args.env_kw, "--env-kw"))
    service = ExpertService(problem, model=args.served_model_name, max_queries=args.max_queries,
                            max_logprobs=args.max_logprobs, seed=args.seed)
    server = ExpertHTTPServer(service, args.host, args.port, verbose=args.verbose)
    cap = "no cap" if args.max_queries is None else f"cap {args.max_queries:,} queries"
    print(f"serving {problem.expert!r} as `{service.model}` at {server.url}/v1 ({cap}); Ctrl-C stops",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(f"stopped after {service.queries:,} expert queries", file=sys.stderr)
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve-expert", help="serve a problem's noisy expert over HTTP (OpenAI / vLLM completions)",
                       description="Serve the noisy expert of ENV over HTTP on localhost, in the OpenAI "
                       "completions convention vLLM uses: POST /v1/completions with token-id prompts, "
                       "`logprobs` / `prompt_logprobs` top-k out, optional sampled continuation "
                       "(`max_tokens`); GET /health, /v1/models, /v1/budget. The subset implemented: "
                       "`python -c 'import noisy_expert_gym.serve as s; help(s)'`.")
    p.add_argument("env", metavar="ENV", help="env id, e.g. NoisyModAdd-v0 or NoisyGSM8K-v1")
    p.add_argument("--env-kw", action="append", metavar="K=V",
                   help="env keyword argument (repeatable), e.g. eta=0.2, access=topk, top_k=5, logit_noise=0.5")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: a free one)")
    p.add_argument("--max-queries", type=int, default=None,
                   help="hard cap on expert queries (prefixes answered) over the server's life (default: none)")
    p.add_argument("--max-logprobs", type=int, default=20,
                   help="the largest logprobs / prompt_logprobs k of a full-access expert (default: 20, vLLM's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the expert's draws (default: 0)")
    p.add_argument("--served-model-name", default=None, help="the model name clients send (default: the env id)")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    p.set_defaults(func=_cmd_serve_expert)

"""The teacher endpoint end to end on loopback: what it answers (against the oracle), per access mode, bad
inputs (a JSON error naming the field), the hard cap, concurrent clients, reproducible seeds, logit noise,
GSM-8K's reference teacher, and `neg serve-expert` as a process."""

from __future__ import annotations

import http.client
import json
import math
import os
import subprocess
import sys
import threading
from contextlib import contextmanager

import numpy as np
import pytest

from noisy_expert_gym import make_problem
from noisy_expert_gym.serve import ExpertClient, ExpertServerError, ExpertService, serve_in_thread
from noisy_expert_gym.topk import topk_of

KW = {"p": 5, "m": 4, "eta": 0.3, "law": "mixture"}


@contextmanager
def serving(problem, **kw):
    server, thread = serve_in_thread(ExpertService(problem, **kw))
    try:
        yield server, ExpertClient(server.url, timeout=30)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _seq(problem, n=1, t=3, seed=0):
    """n sequences: a prompt of the task and t chain tokens (the expert's own)."""
    rng = np.random.default_rng(seed)
    prompts = problem.task.sample_prompts(rng, n)
    chain = problem.expert.with_rng(rng).rollout(prompts)[:, :t]
    return [list(map(int, np.concatenate([p, c]))) for p, c in zip(prompts, chain, strict=True)], prompts, chain


def test_routes_and_what_prompt_logprobs_answers():
    problem = make_problem("NoisyModAdd-v0", **KW)
    with serving(problem, max_queries=1000) as (_server, client):
        assert client.health() and client.models() == ["NoisyModAdd-v0"]
        assert client.budget() == {"queries": 0, "max_queries": 1000, "remaining": 1000}
        seqs, prompts, chain = _seq(problem, n=3, t=4)
        out = client.complete(model="NoisyModAdd-v0", prompt=seqs, max_tokens=0, prompt_logprobs=3)
        assert out["usage"]["expert_queries"] == 12 and client.budget()["queries"] == 12
        plen = problem.task.prompt_len
        for i, choice in enumerate(out["choices"]):
            pl = choice["prompt_logprobs"]
            assert len(pl) == len(seqs[i]) and all(e is None for e in pl[:plen])
            assert choice["token_ids"] == [] and choice["finish_reason"] == "length"
            for j in range(4):
                row = problem.expert.probs(problem.task.observe(prompts[i : i + 1], chain[i : i + 1, :j]))[0]
                want = topk_of(row, 3)
                entry = pl[plen + j]
                top = sorted(entry.items(), key=lambda kv: kv[1]["rank"])[:3]
                assert [int(t) for t, _ in top] == want.ids.tolist()
                np.testing.assert_allclose([v["logprob"] for _, v in top], want.logprobs)
                given = entry[str(chain[i, j])]  # the given token's own entry, whatever its rank (full access)
                assert given["logprob"] == pytest.approx(math.log(row[chain[i, j]]))
        # the client's TopK view of the same answer
        tk = client.score(seqs[:1], 2)[0]
        assert tk.ids.shape == (4, 2) and tk.ids[:, 0].tolist() == [int(problem.task.clean_along(prompts, np.pad(
            chain, ((0, 0), (0, 0))))[0, j]) for j in range(4)]


def test_generation_logprobs_echo_and_seeds():
    problem = make_problem("NoisyModAdd-v0", **KW)
    with serving(problem) as (_, client):
        seqs, _, _ = _seq(problem, n=2, t=1)
        a = client.complete(prompt=seqs, max_tokens=3, n=2, seed=11, logprobs=2)
        b = client.complete(prompt=seqs, max_tokens=3, n=2, seed=11, logprobs=2)
        assert [c["token_ids"] for c in a["choices"]] == [c["token_ids"] for c in b["choices"]]
        assert [c["index"] for c in a["choices"]] == [0, 1, 2, 3] and a["usage"]["expert_queries"] == 12
        lp = a["choices"][0]["logprobs"]
        assert lp["tokens"] == [f"token_id:{t}" for t in a["choices"][0]["token_ids"]]
        assert all(f"token_id:{t}" in top for t, top in zip(a["choices"][0]["token_ids"], lp["top_logprobs"],
                                                            strict=True))
        echo = client.complete(prompt=seqs[:1], max_tokens=1, logprobs=1, echo=True)["choices"][0]
        plen = problem.task.prompt_len
        assert len(echo["logprobs"]["tokens"]) == len(seqs[0]) + 1
        assert echo["logprobs"]["token_logprobs"][:plen] == [None] * plen
        assert echo["logprobs"]["token_logprobs"][plen] is not None
        full = client.complete(prompt=[seqs[0][:plen]], max_tokens=10)["choices"][0]  # stops at the horizon
        assert len(full["token_ids"]) == problem.task.horizon and full["finish_reason"] == "length"


@pytest.mark.parametrize("access", ["topk", "sample"])
def test_what_each_access_mode_reveals(access):
    problem = make_problem("NoisyModAdd-v0", **KW, access=access, top_k=2 if access == "topk" else None)
    with serving(problem) as (_, client):
        seqs, _, _ = _seq(problem, t=4)
        assert client.models() == ["NoisyModAdd-v0"]
        if access == "sample":
            for field in ("logprobs", "prompt_logprobs"):
                with pytest.raises(ExpertServerError, match="access='sample'") as err:
                    client.complete(prompt=seqs, max_tokens=1, **{field: 1})
                assert err.value.status == 400 and err.value.param == field
            assert len(client.generate([s[:-2] for s in seqs], 2)[0]) == 2
            return
        with pytest.raises(ExpertServerError, match="top_k=2") as err:
            client.complete(prompt=seqs, prompt_logprobs=3)
        assert err.value.param == "prompt_logprobs"
        pl = client.complete(prompt=seqs, max_tokens=0, prompt_logprobs=2)["choices"][0]["prompt_logprobs"]
        # a given token outside the top 2 is not revealed
        assert all(len(e) == 2 for e in pl if e is not None)


BAD = [
    ({"prompt": "1 2 3"}, "prompt", "no tokenizer"),
    ({"prompt": []}, "prompt", "non-empty"),
    ({"prompt": [[1, 2, "x"]]}, "prompt", "integer token ids"),
    ({"prompt": [1, 2]}, "prompt", "starts with the task's prompt"),
    ({"prompt": [1, 2, 3, 4, 5, 0, 0, 0, 0, 0]}, "prompt", "horizon"),
    ({"prompt": [1, 2, 3, 9, 5]}, "prompt", "prompt\\[0\\]"),
    ({"prompt": [1, 2, 3, 4, 5, 7]}, "prompt", "chain tokens must lie"),
    ({"prompt": [1, 2, 3, 4, 5], "max_tokens": -1}, "max_tokens", "integer >= 0"),
    ({"prompt": [1, 2, 3, 4, 5], "logprobs": 30}, "logprobs", "at most 5"),
    ({"prompt": [1, 2, 3, 4, 5], "n": 0}, "n", "integer in"),
    ({"prompt": [1, 2, 3, 4, 5], "temperature": 0.5}, "temperature", "must be 1"),
    ({"prompt": [1, 2, 3, 4, 5], "stream": True}, "stream", "not supported"),
    ({"prompt": [1, 2, 3, 4, 5], "echo": "yes"}, "echo", "true or false"),
    ({"prompt": [1, 2, 3, 4, 5], "top_p": 0.9}, "top_p", "unsupported field"),
    ({"prompt": [1, 2, 3, 4, 5], "model": "gpt-4"}, "model", "does not exist"),
]


@pytest.mark.parametrize("body,param,msg", BAD, ids=[p + ":" + m for _, p, m in BAD])
def test_bad_requests_get_a_json_error_naming_the_field(body, param, msg):
    problem = make_problem("NoisyModAdd-v0", **KW)
    with serving(problem, max_queries=100) as (_, client):
        with pytest.raises(ExpertServerError, match=msg) as err:
            client.complete(**body)
        assert err.value.status == (404 if param == "model" else 400) and err.value.param == param
        assert client.budget()["queries"] == 0


def test_malformed_http_is_answered_in_json():
    problem = make_problem("NoisyModAdd-v0", **KW)
    with serving(problem) as (server, _):
        host, port = server.server_address[:2]

        def raw(method, path, body=None, headers=None):
            conn = http.client.HTTPConnection(host, port, timeout=10)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            out = r.status, json.loads(r.read())
            conn.close()
            return out

        status, body = raw("POST", "/v1/completions", b"{not json", {"Content-Type": "application/json"})
        assert status == 400 and "not valid JSON" in body["error"]["message"]
        status, body = raw("POST", "/v1/completions", b"[1, 2]")
        assert status == 400 and "JSON object" in body["error"]["message"]
        status, body = raw("GET", "/v1/nothing")
        assert status == 404 and body["error"]["type"] == "NotFoundError"
        status, body = raw("POST", "/v1/chat/completions", b"{}")
        assert status == 404
        status, body = raw("POST", "/v1/completions", b"{}", {"Content-Length": str(1 << 30)})
        assert status == 413
        conn = http.client.HTTPConnection(host, port, timeout=10)  # no Content-Length at all
        conn.putrequest("POST", "/v1/completions")
        conn.endheaders()
        r = conn.getresponse()
        assert r.status == 411 and "Content-Length" in json.loads(r.read())["error"]["message"]
        conn.close()


def test_the_cap_refuses_a_request_whole_before_answering_it():
    problem = make_problem("NoisyModAdd-v0", **KW)
    with serving(problem, max_queries=10) as (_, client):
        seqs, _, _ = _seq(problem, t=4)
        assert client.complete(prompt=seqs, max_tokens=0, prompt_logprobs=1)["usage"]["expert_queries"] == 4
        with pytest.raises(ExpertServerError, match="budget exhausted.*may cost 8.*6 of the server's 10") as err:
            client.complete(prompt=seqs + seqs, max_tokens=0, prompt_logprobs=1)
        assert err.value.status == 429 and err.value.error["type"] == "insufficient_quota"
        assert client.budget() == {"queries": 4, "max_queries": 10, "remaining": 6}
        client.complete(prompt=seqs, max_tokens=0, prompt_logprobs=1)
        client.complete(prompt=[seqs[0][:5]], max_tokens=2)
        assert client.budget()["remaining"] == 0
        with pytest.raises(ExpertServerError) as err:
            client.complete(prompt=[seqs[0][:5]], max_tokens=1)
        assert err.value.status == 429


def test_concurrent_clients_never_overspend_and_every_query_is_counted_once():
    problem = make_problem("NoisyModAdd-v0", **KW, logit_noise=0.5)
    cap = 500
    with serving(problem, max_queries=cap) as (server, _):
        seqs, _, _ = _seq(problem, n=2, t=3)
        spent, refused, errors = [], [], []

        def worker(w):
            client = ExpertClient(server.url, timeout=30)
            for r in range(15):
                try:
                    out = client.complete(prompt=seqs, max_tokens=1 + (w + r) % 3, prompt_logprobs=2)
                    spent.append(out["usage"]["expert_queries"])
                except ExpertServerError as e:
                    (refused if e.status == 429 else errors).append(e)

        threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors and refused and spent
        b = ExpertClient(server.url).budget()
        assert b["queries"] == sum(spent) <= cap
        assert server.service.expert.num_queries == sum(spent)


def test_logit_noise_makes_identical_queries_disagree_unless_seeded():
    problem = make_problem("NoisyModAdd-v0", **KW, logit_noise=1.0)
    with serving(problem) as (_, client):
        seqs, _, _ = _seq(problem, t=3)

        def lps(**kw):
            out = client.complete(prompt=seqs, max_tokens=0, prompt_logprobs=2, **kw)["choices"][0]
            return [[v["logprob"] for v in e.values()] for e in out["prompt_logprobs"] if e]

        assert lps() != lps()
        assert lps(seed=3) == lps(seed=3)


def test_gsm8k_reference_teacher_is_served():
    problems = [{"question": "What is 2+3?", "answer": "2+3=5\n#### 5"}, {"question": "7-1?", "answer": "6\n#### 6"}]
    problem = make_problem("NoisyGSM8K-v1", problems=problems, eta=0.05, max_new_tokens=32)
    task = problem.task
    with serving(problem) as (_, client):
        prompts = task.all_prompts()
        ref = task.clean_chains(prompts)
        for i in range(2):
            written = prompts[i][prompts[i] != task.pad_token].tolist()
            n_ref = int(np.argmax(ref[i] == task.eos_token)) + 1
            top = client.score([written + ref[i, :n_ref].tolist()], 1)[0]
            assert top.ids[:, 0].tolist() == ref[i, :n_ref].tolist()  # the reference path leads every row
            cont = client.complete(prompt=[written], max_tokens=32, seed=0)["choices"][0]
            assert cont["finish_reason"] == "stop" and cont["token_ids"][-1] in task.eos_tokens
            assert isinstance(cont["text"], str)
        with pytest.raises(ExpertServerError, match="does not start with one of the task's prompts"):
            client.complete(prompt=[[0, 1, 2, 3]], max_tokens=1)


def test_neg_serve_expert_runs_as_a_process():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scoreboards.cli", "serve-expert", "NoisyModAdd-v0",
                             "--env-kw", "m=3", "--env-kw", "access=topk", "--env-kw", "top_k=2", "--port", "0",
                             "--max-queries", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        line = proc.stdout.readline()
        assert "serving Expert(" in line and "top_k=2" in line, line + proc.stderr.read()
        url = line.split(" at ")[1].split("/v1")[0]
        client = ExpertClient(url, timeout=30)
        assert client.models() == ["NoisyModAdd-v0"] and client.budget()["max_queries"] == 5
        assert client.generate([[1, 2, 3, 7]], 3, seed=0)[0].__len__() == 3
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()

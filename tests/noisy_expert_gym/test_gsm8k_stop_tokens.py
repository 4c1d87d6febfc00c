"""Stop tokens (issue 16): every end-of-turn token of the chat template ends a generation.

Offline: a tiny Gemma-3-shaped model and a locally built tokenizer whose chat template
ends turns with ``<end_of_turn>`` (no download). The model is wired by hand so that
its greedy continuation of a prompt is ``"42"`` then ``<end_of_turn>`` then junk:
rollouts, loss masks, metrics and answer extraction must stop at ``<end_of_turn>``.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import noisy_expert_gym  # noqa: F401  (registers the envs)
from noisy_expert_gym.tasks.gsm8k import GSM8KTask, HFTokenizer, WordProblem
from noisy_expert_gym.tasks.gsm8k.hf_tokenizer import detect_stop_tokens
from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

ASCII = ["\n"] + [chr(c) for c in range(32, 127)]
SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
# A Gemma-style template: turns open with <start_of_turn>role and close with <end_of_turn>.
GEMMA_CHAT = ("{{ bos_token }}{% for m in messages %}"
              "{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
              "<start_of_turn>{{ role }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}"
              "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
PROBLEMS = [WordProblem("What is 6 * 7?", "6 * 7 = <<6*7=42>>42\n#### 42", 0),
            WordProblem("What is 40 + 2?", "40 + 2 = 42\n#### 42", 1)]
H = 24


def gemma_tokenizer(turn_end: str = "<end_of_turn>", template: str = GEMMA_CHAT):
    """A character-level fast tokenizer with Gemma's special tokens, built locally."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    specials = [*SPECIALS[:5], turn_end]
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(specials + ASCII)}, merges=[], unk_token="<unk>"))
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>",
                                  bos_token="<bos>", extra_special_tokens=["<start_of_turn>", turn_end])
    tok.chat_template = template.replace("<end_of_turn>", turn_end)
    return tok


def save_gemma(path: Path) -> Path:
    """A one-layer Gemma 3 whose greedy output after "\\n" is "42", <end_of_turn>, then "9"s.

    Attention and MLP outputs are zeroed, so the last hidden state is the (normalised)
    embedding of the current token; embeddings are one-hot and the LM head maps each
    token to its successor: a next-token table, in a real Gemma 3 architecture.
    """
    tok = gemma_tokenizer()
    v, width = len(tok), 128
    cfg = transformers.Gemma3TextConfig(vocab_size=v, hidden_size=width, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                        max_position_embeddings=512, tie_word_embeddings=False,
                                        pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(0)
    model = transformers.Gemma3ForCausalLM(cfg)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("\n", "4", "2", "9", "<end_of_turn>")}
    successor = {"\n": "4", "4": "2", "2": "<end_of_turn>", "<end_of_turn>": "9", "9": "9"}
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(v, width))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        for a, b in successor.items():
            model.lm_head.weight[ids[b], ids[a]] = 10.0
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_gemma(tmp_path_factory.mktemp("tiny-gemma3"))


def test_end_of_turn_is_detected_from_the_template() -> None:
    tok = gemma_tokenizer()
    eot, eos = tok.convert_tokens_to_ids("<end_of_turn>"), tok.eos_token_id
    hf = HFTokenizer(tok)
    assert hf.eos_tokens == (eot, eos) and hf.eos_token == eot  # the teacher writes the end of turn
    # Read from the template, not from a list of known names: any marker the template writes.
    custom = gemma_tokenizer(turn_end="<|turn_done|>")
    assert HFTokenizer(custom).eos_tokens[0] == custom.convert_tokens_to_ids("<|turn_done|>")
    # v0's behaviour, the tokenizer's EOS only; extra ids (a generation config) are added.
    assert detect_stop_tokens(tok, stop_on="eos") == (eos,)
    assert HFTokenizer(tok, stop_on="eos", stop_tokens=[eot]).eos_tokens == (eos, eot)
    assert HFTokenizer(tok, chat_template=False).eos_tokens == (eos, eot)  # plain prompt: EOS first
    with pytest.raises(ValueError, match="not a token"):
        HFTokenizer(tok, stop_tokens=["<nope>"])
    with pytest.raises(ValueError, match="stop_on"):
        HFTokenizer(tok, stop_on="turns")


def _text_task(stop_on: str) -> GSM8KTask:
    return GSM8KTask(PROBLEMS, tokenizer=HFTokenizer(gemma_tokenizer(), stop_on=stop_on), max_new_tokens=H)


def test_masks_metrics_and_answers_stop_at_the_first_stop_token() -> None:
    task = _text_task("turn")
    tok = task.tokenizer
    eot, eos, nine = tok.eos_tokens[0], tok.eos_tokens[1], tok.hf.convert_tokens_to_ids("9")
    prompts = task.all_prompts()
    chains = np.full((2, H), nine, np.int64)
    answer = tok.encode("42")
    chains[:, :2] = answer
    chains[0, 2] = eot  # "42" <end_of_turn> 999...
    chains[1, 2] = eos  # "42" <eos> 999...: any stop token ends the chain
    valid = task.valid_along(prompts, chains)
    assert valid[:, :3].all() and not valid[:, 3:].any()
    assert task.texts(chains) == ["42", "42"] and task.answers(chains) == ["42", "42"]
    m = task.metrics(prompts, chains)
    assert m["final_exact"].all() and list(m["length"]) == [3, 3] and m["finished"].all()
    # v0 stops on <eos> only: the first row runs on through <end_of_turn> into the junk.
    v0 = _text_task("eos")
    assert v0.valid_along(prompts, chains)[0].all() and v0.answers(chains)[0] != "42"


def test_reference_teacher_ends_its_turn() -> None:
    task = _text_task("turn")
    eot = task.tokenizer.eos_tokens[0]
    prompts = task.all_prompts()
    ref = task.clean_chains(prompts)
    for i in range(2):
        r = task.reference_tokens(i)
        assert r[-1] == eot and task.tokenizer.decode(r) == task.solutions[i]
    clean = ReferenceExpert(task, clean=True)
    assert np.array_equal(clean.rollout(prompts), ref)
    assert clean.num_queries == sum(len(task.reference_tokens(i)) for i in range(2))
    m = task.metrics(prompts, ref)
    assert m["full_exact"].all() and m["final_exact"].all()


def test_hf_teacher_rollout_stops_at_end_of_turn(gemma_dir: Path) -> None:
    env = gym.make("NoisyGSM8K-v1", problems=PROBLEMS, expert=f"hf:{gemma_dir}", max_new_tokens=H)
    u = env.unwrapped
    eot = u.task.tokenizer.hf.convert_tokens_to_ids("<end_of_turn>")
    assert u.task.eos_token == eot and u.stop_on == "turn"
    prompts = u.task.all_prompts()
    assert u.task.tokenizer.decode(prompts[0][prompts[0] != u.task.pad_token]).endswith("<start_of_turn>model\n")
    u.clean_expert.reset_queries()
    chains = u.clean_expert.rollout(prompts)
    assert u.task.texts(chains) == ["42", "42"] and (chains[:, 2] == eot).all()
    assert (chains[:, 3:] == eot).all()  # padded after the stop
    assert u.clean_expert.num_queries == 2 * 3  # "4", "2", <end_of_turn>: generation stopped there
    assert u.task.metrics(prompts, chains)["final_exact"].all()
    # The env ends the episode on <end_of_turn> with the reward for "42".
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, reward, terminated, _, info = env.step(int(u.clean_expert.sample(obs)))
    assert terminated and reward == 1.0 and info["text"] == "42"
    # v0 (EOS only) generates through <end_of_turn> to the horizon and reads a wrong answer.
    v0 = gym.make("NoisyGSM8K-v0", problems=PROBLEMS, expert=f"hf:{gemma_dir}", max_new_tokens=H).unwrapped
    assert v0.task.eos_tokens == (v0.task.tokenizer.hf.eos_token_id,)
    run_on = v0.clean_expert.rollout(prompts)
    assert (run_on[:, 3:] == v0.task.tokenizer.hf.convert_tokens_to_ids("9")).all()
    assert not v0.task.metrics(prompts, run_on)["final_exact"].any()


def test_generation_config_stop_ids_are_added(tmp_path: Path) -> None:
    d = save_gemma(tmp_path / "gen")
    cfg = transformers.GenerationConfig.from_pretrained(d)
    cfg.eos_token_id = [1, 3]  # e.g. Gemma 3's [<eos>, <end_of_turn>]; here <unk> = 3 as an extra
    cfg.save_pretrained(d)
    u = gym.make("NoisyGSM8K-v1", problems=PROBLEMS, expert=f"hf:{d}", max_new_tokens=H).unwrapped
    assert 3 in u.task.eos_tokens and u.task.eos_tokens[0] == u.task.tokenizer.hf.convert_tokens_to_ids(
        "<end_of_turn>")


def test_vocabulary_check_ignores_the_stop_policy() -> None:
    """A student's raw tokenizer matches a v0 (EOS-only) task's wrapper of the same files."""
    from noisy_expert_gym.tasks.gsm8k import check_same_vocab

    tok = gemma_tokenizer()
    check_same_vocab(tok, HFTokenizer(tok, stop_on="eos"))
    check_same_vocab(HFTokenizer(tok), HFTokenizer(tok, stop_on="eos"))

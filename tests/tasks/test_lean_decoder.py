"""The lean decoder gives the same tokens as transformers' generate() (greedy) and as an
exhaustive search (beams)."""

import numpy as np
import pytest
import torch
from transformers import WhisperForConditionalGeneration

from frugal.models import load_ct2_whisper
from frugal.tasks.asr import DecodeOptions, LeanDecoder, Transcriber
from tests.tolerance import NETWORK_RMS_U, U32, argmax_is_clear, matmul_bound


def _generate_tokens(model, enc, prompt, max_new_tokens=None):
    from transformers.modeling_outputs import BaseModelOutput

    kwargs = {} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}
    if hasattr(model, "to_transformers"):  # frugal's modules: transformers' class shares them
        model = model.to_transformers()
    seqs = model.generate(
        encoder_outputs=BaseModelOutput(last_hidden_state=enc),
        decoder_input_ids=torch.tensor([prompt] * enc.shape[0]),
        do_sample=False,
        num_beams=1,
        **kwargs,
    ).tolist()
    eot = model.generation_config.eos_token_id
    out = []
    for row in seqs:
        row = row[len(prompt) :] if row[: len(prompt)] == prompt else row
        out.append(row[: row.index(eot)] if eot in row else row)
    return out


def test_random_model_matches_generate_batched(small_ct2_folder):
    model, *_ = load_ct2_whisper(small_ct2_folder)
    lean = LeanDecoder(model)
    torch.manual_seed(1)
    enc = torch.randn(3, 1500, model.config.d_model)
    prompt = [50257, 50362]
    ours = lean.greedy(enc, [prompt] * 3, max_new_tokens=40)
    ref = _generate_tokens(model, enc, prompt, max_new_tokens=40)
    assert ours == ref
    assert all(len(t) > 5 for t in ours)  # a random model rambles: the loop really ran
    # batched equals one by one
    assert [lean.greedy(enc[i : i + 1], [prompt])[0][:40] for i in range(3)] == ours


def test_suppressed_tokens_never_emitted():
    torch.manual_seed(0)
    from tests.conftest import small_whisper_config

    model = WhisperForConditionalGeneration(small_whisper_config()).eval()
    enc = torch.randn(2, 1500, 64)
    base = LeanDecoder(model).greedy(enc, [[50257, 50362]] * 2, max_new_tokens=20)
    banned = sorted({t for row in base for t in row})
    out = LeanDecoder(model, suppress_tokens=banned).greedy(
        enc, [[50257, 50362]] * 2, max_new_tokens=20
    )
    assert not set(banned) & {t for row in out for t in row}


def test_tiny_en_lean_equals_generate(tiny_en, builtin):
    audios = [u.load() for u in builtin.take(4)]  # two batches of two
    lean = Transcriber(tiny_en, DecodeOptions(method="lean", batch_size=2)).transcribe(audios)
    gen = Transcriber(tiny_en, DecodeOptions(method="generate", batch_size=2)).transcribe(audios)
    assert [t.tokens for t in lean] == [t.tokens for t in gen]
    one = Transcriber(tiny_en, DecodeOptions(method="lean", batch_size=1)).transcribe(audios)
    assert [t.tokens for t in one] == [t.tokens for t in lean]
    assert "kettle" in lean[1].text.lower()


def test_decoder_rebuilds_after_weight_change(tiny_en):
    tr = Transcriber(tiny_en)
    first = tr.lean_decoder()
    assert tr.lean_decoder() is first
    layer = tiny_en.model.model.decoder.layers[0].fc1
    with torch.no_grad():
        layer.bias.add_(0.0)  # an in-place write bumps the tensor version
    assert tr.lean_decoder() is not first


def test_max_new_tokens_is_respected(small_ct2_folder):
    model, *_ = load_ct2_whisper(small_ct2_folder)
    out = LeanDecoder(model).greedy(torch.randn(1, 1500, 64), [[50257, 50362]], max_new_tokens=3)
    assert len(out[0]) <= 3
    with pytest.raises(ValueError):
        LeanDecoder(model).greedy(torch.randn(2, 1500, 64), [[50257], [50257, 50362]])
    assert np.isfinite(
        LeanDecoder(model).prompt_logits(torch.randn(1, 1500, 64), [50257]).numpy()
    ).all()


def test_screened_argmax_is_exact(tiny_en):
    lean = LeanDecoder(tiny_en.model)
    lean.screen = True  # the int8 screen on every CPU (int8 products exact either way)
    torch.manual_seed(0)
    ln = tiny_en.model.model.decoder.layer_norm
    with torch.inference_mode():
        h = ln(torch.randn(64, 384) * 3)  # layer-normed, like the decoder's last hidden state
        bias = lean.suppress_bias
        assert argmax_is_clear(h, lean.proj.t(), bias).all()  # no fp32 near-tie in this draw
        full = (torch.nn.functional.linear(h, lean.proj) + bias).argmax(-1)
        assert torch.equal(lean.argmax_logits(h, bias), full)
        for i in range(8):  # one row at a time too (the screen unions candidates over a batch)
            assert lean.argmax_logits(h[i : i + 1], bias).item() == full[i].item()
        # an exact tie: copy the winning row's weight to a later token; both paths pick the first
        w = lean.proj.clone()
        j = int(full[0])
        w[-1] = w[j]
        lean.proj = w
        lean._screen_setup()
        assert lean.argmax_logits(h[:1], bias).item() == j


def test_fused_screen_equals_the_torch_screen(tiny_en, monkeypatch):
    """The few-row kernel's fused screen (logits, bias, candidates in two passes) gives the
    same token, exact logit and screened logits as the torch screen, for 1-4 rows, with the
    suppression bias (V,), per-row biases (B, V) and a row whose every token is masked."""
    import frugal.tasks.asr.lean_decoder as ld
    from frugal.nn.native import FEW_ROWS_ENV, INT8_GEMM_ENV

    monkeypatch.setenv(INT8_GEMM_ENV, "emulated")
    monkeypatch.setenv(FEW_ROWS_ENV, "kernel")
    lean = LeanDecoder(tiny_en.model)
    lean.screen = True
    torch.manual_seed(1)
    ln = tiny_en.model.model.decoder.layer_norm
    fused = ld.few_rows_kernel
    with torch.inference_mode():
        for b in (1, 2, 4):
            h = ln(torch.randn(b, 384) * 3)
            rows_bias = lean.suppress_bias.repeat(b, 1)
            rows_bias[0, 100:] = float("-inf")  # row 0: only the first 100 tokens allowed
            if b > 1:
                rows_bias[-1] = float("-inf")  # the last row: nothing allowed
            for bias in (lean.suppress_bias, rows_bias):
                got = {}
                for name, rule in (("fused", fused), ("torch", lambda rows: False)):
                    monkeypatch.setattr(ld, "few_rows_kernel", rule)
                    got[name] = lean._screened_max(h, bias)
                assert fused(2 * b)
                (tok_f, val_f, approx_f), (tok_t, val_t, approx_t) = got["fused"], got["torch"]
                assert torch.equal(tok_f, tok_t) and torch.equal(approx_f, approx_t)
                # the exact logits come from F.linear over each path's candidates, which BLAS
                # may sum in another order: both within the fp32 bound of the same product
                live = val_t > float("-inf")
                w = lean.proj[tok_t[live]]
                rows = bias.expand(b, -1)[live].gather(1, tok_t[live, None])[:, 0]
                ref = (h[live].double() * w.double()).sum(-1) + rows.double()
                allow = 2 * matmul_bound(h[live, None, :], w[:, :, None], rows[:, None, None])
                for val in (val_f, val_t):
                    assert torch.equal(val[~live], val_t[~live])
                    assert ((val[live].double() - ref).abs() <= allow[:, 0, 0]).all()


def _timestamp_rules(asr):
    from frugal.tasks.asr.timestamps import TimestampRules

    ids = asr.token_ids
    return TimestampRules(ids["timestamp_begin"], ids["no_timestamps"], ids["eot"])


def test_timestamped_tokens_equal_generate_with_return_timestamps(tiny_en, builtin):
    from transformers.modeling_outputs import BaseModelOutput

    tr = Transcriber(tiny_en)
    feats = tr.features([u.load() for u in builtin.take(6)])
    sot, eot = tiny_en.token_ids["sot"], tiny_en.token_ids["eot"]
    with torch.inference_mode():
        enc = tiny_en.model.model.encoder(feats).last_hidden_state
        ref = tiny_en.model.to_transformers().generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            decoder_input_ids=torch.tensor([[sot]] * 6),
            return_timestamps=True,
        )
    ref = ref["sequences"] if isinstance(ref, dict) else ref
    ref = [row[: row.index(eot)] if eot in row else row for row in ref.tolist()]
    ours = LeanDecoder(tiny_en.model).decode(enc, [[sot]] * 6, timestamps=_timestamp_rules(tiny_en))
    assert ours.tokens == ref
    tb = tiny_en.token_ids["timestamp_begin"]
    assert all(row[0] >= tb and row[-1] >= tb for row in ours.tokens)


def test_timestamped_choice_and_logprob_match_the_full_fp32_computation(tiny_en):
    """The screened step picks the token of the full computation (rules, forcing, argmax) and
    its log-probability is within the screen's bound e of the exact one."""
    lean = LeanDecoder(tiny_en.model)
    lean.screen = True  # the int8 screen on every CPU (int8 products exact either way)
    rules = _timestamp_rules(tiny_en)
    tb = rules.timestamp_begin
    torch.manual_seed(1)
    ln = tiny_en.model.model.decoder.layer_norm
    histories = [[], [tb + 3, 11], [tb + 3, 11, 12, tb + 40], [tb, 5, tb + 9, tb + 9]] * 4
    with torch.inference_mode():
        h = ln(torch.randn(len(histories), 384) * 3)
        bias = lean.suppress_bias + rules.mask(histories, lean.proj.shape[0])
        assert argmax_is_clear(h, lean.proj.t(), bias).all()  # no fp32 near-tie in this draw
        token, logprob = lean._pick_timestamped(h, bias, rules)
        full = rules.force(torch.nn.functional.linear(h.double(), lean.proj.double()) + bias)
        exact = torch.log_softmax(full, dim=-1)
    assert torch.equal(token, exact.argmax(-1))
    e = lean.screen_logits(h, tb)[1].amax(-1)  # the normalizer errs by at most max_j e_j
    err = (logprob.double() - exact.gather(1, token[:, None])[:, 0]).abs()
    assert (err <= e.double() + 1e-5).all(), (err, e)


def test_greedy_logprob_is_within_the_screen_bound(tiny_en):
    """The loop guard's log-probability: the screened greedy token is the exact argmax and its
    log-probability is within the screen's bound e of the float64 one."""
    lean = LeanDecoder(tiny_en.model)
    lean.screen = True  # the int8 screen on every CPU (int8 products exact either way)
    torch.manual_seed(2)
    ln = tiny_en.model.model.decoder.layer_norm
    with torch.inference_mode():
        h = ln(torch.randn(16, 384) * 3)
        assert argmax_is_clear(h, lean.proj.t(), lean.suppress_bias).all()
        token, logprob = lean._pick_greedy(h, lean.suppress_bias)
        full = torch.nn.functional.linear(h.double(), lean.proj.double()) + lean.suppress_bias
        exact = torch.log_softmax(full, dim=-1)
    assert torch.equal(token, exact.argmax(-1))
    e = lean.screen_logits(h, lean.proj.shape[0])[1].amax(-1)
    err = (logprob.double() - exact.gather(1, token[:, None])[:, 0]).abs()
    assert (err <= e.double() + 1e-5).all(), (err, e)


@pytest.mark.parametrize("form", ["linear", "transposed"])
def test_unscreened_picks_read_the_vocabulary_once(tiny_en, monkeypatch, form):
    """Without the int8 screen, a greedy (or timestamped) step computes the full product once:
    its argmax and its normalizer come from the same logits, exact fp32 on either BLAS form."""
    from frugal.nn import wide_linear
    from frugal.tasks.asr import lean_decoder

    monkeypatch.setenv(wide_linear.WIDE_GEMM_ENV, form)
    calls = []
    real = lean_decoder.wide_linear
    monkeypatch.setattr(
        lean_decoder, "wide_linear", lambda h, w: calls.append(w.shape) or real(h, w)
    )
    lean = LeanDecoder(tiny_en.model)
    lean.screen = False
    torch.manual_seed(3)
    with torch.inference_mode():
        h = tiny_en.model.model.decoder.layer_norm(torch.randn(4, 384) * 3)
        token, logprob = lean._pick_greedy(h, lean.suppress_bias)
        assert calls == [lean.proj.shape]
        full = torch.nn.functional.linear(h.double(), lean.proj.double()) + lean.suppress_bias
        exact = torch.log_softmax(full, dim=-1)
    assert argmax_is_clear(h, lean.proj.t(), lean.suppress_bias).all()
    assert torch.equal(token, exact.argmax(-1))
    # each fp32 logit errs by at most its matmul bound b_j: the log-probability by b_token plus
    # max_j b_j (the normalizer), plus a few roundings of the log-softmax's own magnitudes
    b = matmul_bound(h, lean.proj.t()).double()
    picked = exact.gather(1, token[:, None])[:, 0]
    allow = b.gather(1, token[:, None])[:, 0] + b.amax(-1) + 8 * U32 * full.abs().amax(-1)
    assert ((logprob.double() - picked).abs() <= allow).all()
    calls.clear()
    rules = Transcriber(tiny_en).timestamp_rules()
    tb = rules.timestamp_begin
    with torch.inference_mode():
        lean._pick_timestamped(h, lean.suppress_bias.expand(4, -1), rules)
    assert calls == [(tb, 384)]


def test_masked_rows_decode_as_their_trimmed_selves(tiny_en, builtin):
    """Encoder states ending in zero frames (a sparsified batch) are masked in cross-attention:
    a padded row decodes to the same tokens as the row alone."""
    from frugal.tasks.asr import states

    tr = Transcriber(tiny_en)
    enc = tr.encoder(tiny_en, tr.features([builtin[1].load()]))[0, :700]
    padded = states.stack([enc, torch.ones(900, 384)])  # the first row gets 200 zero frames
    assert states.lengths(padded) == [700, 900]
    lean = LeanDecoder(tiny_en.model)
    prompt = [tiny_en.prompt_ids(None, "transcribe")] * 2
    alone = lean.greedy(enc[None], prompt[:1])
    assert lean.greedy(padded, prompt)[0] == alone[0]


def test_sampling_is_reproducible_per_row(tiny_en, builtin):
    tr = Transcriber(tiny_en)
    feats = tr.features([u.load() for u in builtin.take(2)])
    with torch.inference_mode():
        enc = tiny_en.model.model.encoder(feats).last_hidden_state
    lean, sot = LeanDecoder(tiny_en.model), tiny_en.token_ids["sot"]
    rules = _timestamp_rules(tiny_en)

    def gens(*seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    both = lean.decode(enc, [[sot]] * 2, timestamps=rules, temperature=1.0, generators=gens(3, 4))
    one = lean.decode(enc[1:], [[sot]], timestamps=rules, temperature=1.0, generators=gens(4))
    assert both.tokens[1] == one.tokens[0]
    assert abs(both.sum_logprobs[1] - one.sum_logprobs[0]) < 1e-3
    with pytest.raises(ValueError, match="Generator"):
        lean.decode(enc, [[sot]] * 2, temperature=0.5)


def test_score_is_the_teacher_forced_log_probability(tiny_en, builtin):
    """Against a float64 run of transformers' model. Each token's log-probability is a network
    output whose fp32 error is within the network allowance (tests/tolerance.py: rms
    NETWORK_RMS_U·u) of the largest logit; over n tokens the sum errs by at most n times that
    (~0.04 nats here; seen: under 1e-5). A wrong position, mask or prompt costs > 0.1 nats."""
    import copy

    tr = Transcriber(tiny_en)
    feats = tr.features([builtin[0].load()])
    prompt = tiny_en.prompt_ids()
    with torch.inference_mode():
        enc = tiny_en.model.model.encoder(feats).last_hidden_state
        lean = LeanDecoder(tiny_en.model)
        cont = lean.greedy(enc, [prompt])[0]
        seq = torch.tensor([[*prompt, *cont]])
        target = torch.tensor([*cont, lean.eot])
        model64 = copy.deepcopy(tiny_en.model).double()
        logits = model64(encoder_outputs=(enc.double(),), decoder_input_ids=seq).logits[0]
        logits = logits[len(prompt) - 1 :]
        exact = float(torch.log_softmax(logits, -1).gather(1, target[:, None]).sum())
    got = lean.score(enc, [prompt], [cont]).sum_logprobs[0]
    allowance = len(target) * NETWORK_RMS_U * U32 * float(logits.abs().max())
    assert abs(got - exact) <= allowance, (got, exact, allowance)


def test_int8_screen_is_exact_when_the_projection_is_on_the_int8_grid(tiny_en):
    """A vocabulary quantized to int8_pc (frugal quantize --vocab-format int8_pc): the
    screen's weight term vanishes and the argmax is still the fp32 product's."""
    import copy

    from frugal.formats import get_format

    model = copy.deepcopy(tiny_en.model)
    with torch.no_grad():
        model.proj_out.weight.copy_(get_format("int8_pc").quantize(model.proj_out.weight))
    lean = LeanDecoder(model)
    lean.screen = True  # the int8 screen on every CPU (int8 products exact either way)
    torch.manual_seed(2)
    with torch.inference_mode():
        h = model.model.decoder.layer_norm(torch.randn(16, 384) * 3)
        clear = argmax_is_clear(h, lean.proj.t(), lean.suppress_bias)
        assert clear.sum() >= 12  # rows with an fp32 near-tie may go either way in both paths
        full = (torch.nn.functional.linear(h, lean.proj) + lean.suppress_bias).argmax(-1)
        assert torch.equal(lean.argmax_logits(h, lean.suppress_bias)[clear], full[clear])
    assert float(lean.row_err.max()) == 0.0

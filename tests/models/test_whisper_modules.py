"""frugal's own Whisper modules, tokenizer and log-mel front end against transformers' (the
reference they replace on the run-time path), and the lean beam search against a plain one."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from frugal.models.whisper_features import LogMel, mel_filters
from frugal.models.whisper_modules import WhisperDims, WhisperNet, sinusoids
from frugal.tasks.asr import DecodeOptions, Transcriber
from tests.conftest import small_whisper_config
from tests.tolerance import (
    NETWORK_MAX_U,
    U32,
    assert_fp32_network_close,
    assert_fp32_pair_close,
    gamma,
)


def _small_net(seed: int = 0) -> WhisperNet:
    dims = WhisperDims.from_dict(small_whisper_config().to_dict())
    torch.manual_seed(seed)
    net = WhisperNet(dims)
    with torch.no_grad():
        net.model.encoder.embed_positions.weight.copy_(sinusoids(1500, 64))
        for p in net.parameters():
            p.add_(0.02 * torch.randn_like(p))  # norms and biases away from 1 and 0
    return net.eval()


def test_modules_compute_what_transformers_computes():
    """Encoder and teacher-forced logits of frugal's modules against transformers' classes
    run in float64 on the same weights (and our float64 run against theirs)."""
    net = _small_net()
    ref64 = copy.deepcopy(net).double().to_transformers()
    torch.manual_seed(1)
    feats = torch.randn(2, 80, 3000)
    ids = torch.randint(0, 50257, (2, 9))
    with torch.inference_mode():
        enc = net.model.encoder(feats).last_hidden_state
        logits = net(input_features=feats, decoder_input_ids=ids).logits
        enc64 = ref64.model.encoder(feats.double()).last_hidden_state
        logits64 = ref64(input_features=feats.double(), decoder_input_ids=ids).logits
        ours64 = copy.deepcopy(net).double()(input_features=feats.double(), decoder_input_ids=ids)
    assert_fp32_network_close(enc, enc64, "encoder")
    assert_fp32_network_close(logits, logits64, "logits")
    assert_fp32_network_close(ours64.logits, logits64, "float64 logits", u=2.0**-53)


def test_encoder_attentions_are_probabilities_and_match_transformers_eager():
    net = _small_net(2)
    ref = net.to_transformers()
    ref.set_attn_implementation("eager")
    feats = torch.randn(1, 80, 3000, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        ours = net.model.encoder(feats, output_attentions=True).attentions
        theirs = ref.model.encoder(feats, output_attentions=True).attentions
    assert len(ours) == 2
    for a, b in zip(ours, theirs, strict=True):
        assert_fp32_pair_close(a, b, "attention probabilities")
        # probabilities: normalised by a float32 sum of T terms (≤ γ_T), each divided (u),
        # then summed again here (≤ γ_T)
        assert (a.sum(-1) - 1).abs().max() <= 2 * gamma(a.shape[-1]) + 4 * U32


def test_encoder_refuses_a_window_of_the_wrong_length():
    with pytest.raises(ValueError, match="3000 mel columns"):
        _small_net().model.encoder(torch.zeros(1, 80, 2000))


def test_mel_filters_and_features_equal_transformers(builtin):
    from transformers import WhisperFeatureExtractor
    from transformers.audio_utils import mel_filter_bank

    for n in (80, 128):
        ref = mel_filter_bank(
            num_frequency_bins=201,
            num_mel_filters=n,
            min_frequency=0.0,
            max_frequency=8000.0,
            sampling_rate=16000,
            norm="slaney",
            mel_scale="slaney",
        )
        np.testing.assert_allclose(mel_filters(n), ref, rtol=1e-12, atol=1e-15)
    audios = [builtin[0].load(), builtin[1].load()[:5000], np.zeros(100, np.float32)]
    ours = LogMel(80)(audios)
    theirs = WhisperFeatureExtractor(feature_size=80)(
        audios, sampling_rate=16000, return_tensors="pt"
    ).input_features
    assert ours.shape == theirs.shape == (3, 80, 3000)
    # the same torch operations on the same inputs: the filters are the only other path
    assert_fp32_pair_close(ours, theirs, "log-mel features")


def test_tokenizer_decodes_and_encodes_as_transformers(tiny_en, builtin):
    from transformers import WhisperTokenizer as HFTokenizer

    from frugal.models.registry import CHECKPOINTS

    ref = HFTokenizer(tokenizer_file=str(CHECKPOINTS["tiny.en"].folder() / "tokenizer.json"))
    tok = tiny_en.tokenizer
    ids = tiny_en.token_ids
    rng = np.random.default_rng(0)
    rows = [tok.encode(" " + u.text) for u in builtin[:40]]
    rows += [
        [ids["sot_prev"], 400, 500, ids["sot"], ids["no_timestamps"], *rows[0], ids["eot"]],
        [ids["timestamp_begin"] + 7, *rows[1], ids["timestamp_begin"] + 90],
        rng.integers(0, ids["timestamp_begin"] + 1500, 30).tolist(),
    ]
    for row in rows:
        for skip in (True, False):
            assert tok.decode(row, skip_special_tokens=skip) == ref.decode(
                row, skip_special_tokens=skip
            ), (row, skip)
    for u in builtin[:40]:
        assert tok.encode(" " + u.text) == ref.encode(" " + u.text, add_special_tokens=False)


class _FixedSourceProjection(torch.nn.Module):
    """A cross-attention key/value projection of the fixed encoder states, computed once:
    every prefix of a search attends over the same states (one row, broadcast)."""

    def __init__(self, linear):
        super().__init__()
        self.linear, self.memo = linear, {}

    def forward(self, x):
        key = (x.data_ptr(), x.shape[1:])
        if key not in self.memo:
            self.memo[key] = self.linear(x[:1])
        return self.memo[key].expand(x.shape[0], -1, -1)


def _float64_reference(asr):
    model = copy.deepcopy(asr.model).double()
    for layer in model.model.decoder.layers:
        for proj in ("k_proj", "v_proj"):
            setattr(
                layer.encoder_attn, proj, _FixedSourceProjection(getattr(layer.encoder_attn, proj))
            )
    return model


def _plain_beam(model, enc, prompt, beam, max_new):
    """Beam search as the lean decoder's docstring states it, each prefix scored by a full
    teacher-forced pass (no cache) of `model` (the float64 copy; the live prefixes of a step,
    all of one length, in one batch). Returns (tokens, summed log-probability, the largest
    finite |logit| seen)."""
    for module in model.modules():
        if isinstance(module, _FixedSourceProjection):
            module.memo.clear()  # other encoder states
    gc = model.generation_config
    eot = gc.eos_token_id
    live, finished, largest = [([], 0.0)], [], 0.0
    for step in range(max_new):
        cands = []
        ids = torch.tensor([prompt + seq for seq, _ in live])
        states = enc.expand(len(live), -1, -1)
        rows = model.proj_out(model.model.decoder(ids, states, None)[:, -1])  # last position only
        for (seq, score), logits in zip(live, rows, strict=True):
            largest = max(largest, float(logits.abs().max()))
            logits[gc.suppress_tokens] = float("-inf")
            if step == 0:
                logits[gc.begin_suppress_tokens] = float("-inf")
            lp = F.log_softmax(logits, dim=-1)
            values, tokens = lp.topk(beam + 1)
            cands += [(score + float(v), seq, int(t)) for v, t in zip(values, tokens, strict=True)]
        live = []
        for score, seq, t in sorted(cands, key=lambda c: -c[0]):
            if t == eot:
                if len(finished) < beam:
                    finished.append((seq, score))
                continue
            live.append(([*seq, t], score))
            if len(live) == beam:
                break
        if len(finished) >= beam:
            break
    pool = finished if len(finished) >= beam else finished + live
    seq, score = max(pool, key=lambda c: c[1] / max(1, len(c[0])))
    return seq, score, largest


def _assert_same_search(tokens, sum_logprob, ref_tokens, ref_sum, largest_logit):
    """The float32 search found the float64 one's sequence with its log-probability, or a
    sequence whose per-token log-probability ties it within float32's error. Allowance: each
    float32 logit is within NETWORK_MAX_U·u of the largest |logit| of its float64 value (the
    suite's stated network allowance), a log-probability (logit − logsumexp) within twice
    that, a sum of n + 1 of them (end-of-text included) within n + 1 times that."""
    per_token = 2 * NETWORK_MAX_U * U32 * largest_logit
    if tokens == ref_tokens:
        assert abs(sum_logprob - ref_sum) <= (len(tokens) + 1) * per_token
    else:  # a tie that rounding may break either way
        mine, ref = sum_logprob / max(1, len(tokens)), ref_sum / max(1, len(ref_tokens))
        # each side's per-token score within per_token·(n + 1)/n of its exact value
        shortest = max(1, min(len(tokens), len(ref_tokens)))
        assert abs(mine - ref) <= 2 * per_token * (1 + 1 / shortest)


def test_beam_search_equals_a_plain_beam_search(tiny_en, builtin):
    short = sorted(builtin[:30], key=lambda u: len(u.load()))[:2]
    tr = Transcriber(tiny_en)
    enc = tiny_en.model.model.encoder(tr.features([u.load() for u in short])).last_hidden_state
    prompt = tiny_en.prompt_ids()
    lean = tr.lean_decoder()
    enc = enc.detach()
    with torch.inference_mode():
        got = lean.beam_search(enc, [prompt] * 2, beam_size=3, max_new_tokens=40)
        one = lean.beam_search(enc, [prompt] * 2, beam_size=1, max_new_tokens=40)
        model64 = _float64_reference(tiny_en)
        for i in range(2):
            for beams, res in ((3, got), (1, one)):  # one beam: greedy decoding
                ref = _plain_beam(model64, enc[i : i + 1].double(), prompt, beams, 40)
                _assert_same_search(res.tokens[i], res.sum_logprobs[i], *ref)
    assert all(len(t) > 3 for t in got.tokens)  # real sentences were searched


def test_beam_search_through_the_transcriber_is_close_to_greedy(tiny_en, builtin):
    audios = [u.load() for u in builtin[:6]]
    beam = Transcriber(tiny_en, DecodeOptions(beam_size=3)).transcribe(audios)
    greedy = Transcriber(tiny_en).transcribe(audios)
    same = sum(b.text == g.text for b, g in zip(beam, greedy, strict=True))
    assert same >= 3 and all(b.text for b in beam)


def test_an_untied_projection_is_refused():
    net = _small_net()
    state = dict(net.state_dict())
    WhisperNet.from_state_dict(net.config, state, None)  # tied: loads
    state["proj_out.weight"] = state["proj_out.weight"] + 1.0
    with pytest.raises(ValueError, match="ties them"):
        WhisperNet.from_state_dict(net.config, state, None)

"""A lean decoder for Whisper (greedy, sampled or beam search) over frugal's Whisper modules.

transformers' `generate()` rebuilds caches, masks and logits processors at every token; here
the cross-attention keys/values of all layers are computed once per utterance, the
self-attention cache is preallocated, and each step is only the layer math. Greedy decoding
yields the same tokens as `generate()` with Whisper's suppress / begin-suppress rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from frugal.nn.modules import QuantMixin
from frugal.nn.native import fast_int8_rows, few_rows_kernel, int8_matmul, quantize_rows
from frugal.nn.wide_linear import wide_linear
from frugal.tasks.asr.states import frame_mask
from frugal.tasks.asr.timestamps import TimestampRules


@dataclass
class _Layer:
    ln1: tuple[torch.Tensor, torch.Tensor]
    w_qkv: torch.Tensor
    b_qkv: torch.Tensor
    w_o: torch.Tensor
    b_o: torch.Tensor
    ln2: tuple[torch.Tensor, torch.Tensor]
    w_q_cross: torch.Tensor
    b_q_cross: torch.Tensor
    w_o_cross: torch.Tensor
    b_o_cross: torch.Tensor
    ln3: tuple[torch.Tensor, torch.Tensor]
    w_fc1: torch.Tensor
    b_fc1: torch.Tensor
    w_fc2: torch.Tensor
    b_fc2: torch.Tensor


@dataclass
class Decoded:
    """Tokens of each row (no prompt, no end-of-text) with what long-form decoding needs:
    the summed log-probability of the chosen tokens and of end-of-text (nats, under the
    distribution after the decoding rules) and the probability of `<|nospeech|>` after
    start-of-transcript."""

    tokens: list[list[int]]
    sum_logprobs: list[float] = field(default_factory=list)
    no_speech_probs: list[float | None] = field(default_factory=list)

    def avg_logprob(self, i: int) -> float:
        """Mean log-probability per token, end-of-text included (Whisper's definition)."""
        return self.sum_logprobs[i] / (len(self.tokens[i]) + 1)


def _w(module: torch.nn.Module) -> torch.Tensor:
    """The weight the module computes with (quantized when it is a frugal.nn module)."""
    if isinstance(module, QuantMixin):
        if module.formats.get("input") or module.formats.get("grad"):
            raise ValueError(
                "the lean decoder simulates weight formats only; use method='generate' for "
                "input-quantized decoder modules"
            )
        return module.qweight().detach()
    return module.weight.detach()


def _bias(linear: torch.nn.Linear) -> torch.Tensor:
    if linear.bias is not None:
        return linear.bias.detach()
    return torch.zeros(linear.out_features, dtype=linear.weight.dtype, device=linear.weight.device)


def _ln(norm: torch.nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor]:
    return norm.weight.detach(), norm.bias.detach()


# rows of the vocabulary quantized at a time for the screen
SETUP_ROWS = 4096


class LeanDecoder:
    """Greedy decoding over a fixed snapshot of a Whisper decoder's weights.

    Build it after any change to the weights (it fuses q/k/v and the per-layer cross-attention
    k/v projections into single matrices)."""

    max_candidates = 4096  # screened tokens re-checked in fp32 before the full product wins
    # screen the vocabulary in int8 (None: where this CPU multiplies the step's rows in int8
    # faster than fp32, see frugal.nn.native.fast_int8_rows; the argmax is exact either way)
    screen: bool | None = None

    def __init__(
        self,
        model: torch.nn.Module,
        suppress_tokens: list[int] | None = None,
        begin_suppress_tokens: list[int] | None = None,
    ):
        dec = model.model.decoder
        cfg = model.config
        self.d_model = cfg.d_model
        self.n_heads = cfg.decoder_attention_heads
        self.head_dim = self.d_model // self.n_heads
        self.max_length = cfg.max_target_positions
        self.eps = dec.layer_norm.eps
        self.embed = _w(dec.embed_tokens)
        self.positions = dec.embed_positions.weight.detach()
        self.final_ln = _ln(dec.layer_norm)
        self.proj = _w(model.proj_out)
        self.layers: list[_Layer] = []
        cross_w, cross_b = [], []
        for layer in dec.layers:
            sa, ca = layer.self_attn, layer.encoder_attn
            self.layers.append(
                _Layer(
                    ln1=_ln(layer.self_attn_layer_norm),
                    w_qkv=torch.cat([_w(sa.q_proj), _w(sa.k_proj), _w(sa.v_proj)]),
                    b_qkv=torch.cat([_bias(sa.q_proj), _bias(sa.k_proj), _bias(sa.v_proj)]),
                    w_o=_w(sa.out_proj),
                    b_o=_bias(sa.out_proj),
                    ln2=_ln(layer.encoder_attn_layer_norm),
                    w_q_cross=_w(ca.q_proj),
                    b_q_cross=_bias(ca.q_proj),
                    w_o_cross=_w(ca.out_proj),
                    b_o_cross=_bias(ca.out_proj),
                    ln3=_ln(layer.final_layer_norm),
                    w_fc1=_w(layer.fc1),
                    b_fc1=_bias(layer.fc1),
                    w_fc2=_w(layer.fc2),
                    b_fc2=_bias(layer.fc2),
                )
            )
            cross_w += [_w(ca.k_proj), _w(ca.v_proj)]
            cross_b += [_bias(ca.k_proj), _bias(ca.v_proj)]
        self.cross_w = torch.cat(cross_w)
        self.cross_b = torch.cat(cross_b)
        gc = model.generation_config
        suppress = suppress_tokens if suppress_tokens is not None else gc.suppress_tokens or []
        begin = (
            begin_suppress_tokens
            if begin_suppress_tokens is not None
            else gc.begin_suppress_tokens or []
        )
        vocab = self.proj.shape[0]
        self.suppress_bias = torch.zeros(vocab, dtype=self.proj.dtype, device=self.proj.device)
        self.suppress_bias[[t for t in suppress if 0 <= t < vocab]] = float("-inf")
        self.begin_bias = self.suppress_bias.clone()
        self.begin_bias[[t for t in begin if 0 <= t < vocab]] = float("-inf")
        self.eot = int(gc.eos_token_id if isinstance(gc.eos_token_id, int) else gc.eos_token_id[0])

    def cross_kv(self, encoder_out: torch.Tensor) -> list[tuple]:
        """Per-layer cross-attention (k, v, mask): k, v (B, heads, T, head_dim), each
        contiguous (every decoding step reads them whole: one block per head is ~1.5x faster
        to attend over than rows strided across all layers' projections); mask (B, 1, 1, T),
        True where a frame is attended, or None when no row of the batch has zero-frame
        padding (see `states`)."""
        b, t, _ = encoder_out.shape
        d = self.n_heads * self.head_dim
        kv = [
            F.linear(
                encoder_out, self.cross_w[j * d : (j + 1) * d], self.cross_b[j * d : (j + 1) * d]
            )
            .view(b, t, self.n_heads, self.head_dim)
            .transpose(1, 2)
            .contiguous()
            for j in range(2 * len(self.layers))
        ]
        mask = frame_mask(encoder_out)
        if mask is not None:
            mask = mask[:, None, None, :]
        return [(kv[2 * i], kv[2 * i + 1], mask) for i in range(len(self.layers))]

    def _forward(
        self, tokens: torch.Tensor, pos: int, cache, cross, capture: dict | None = None
    ) -> torch.Tensor:
        """Run `tokens` (B, S) at positions pos..pos+S-1; final hidden states (B, S, d),
        layer-normed: logits are F.linear(h, proj). `capture` {layer: [heads]} receives each
        such layer's scaled cross-attention scores q·kᵀ/√d_head, (B, heads, S, T)."""
        b, s = tokens.shape
        h_, dh, d = self.n_heads, self.head_dim, self.d_model
        x = F.embedding(tokens, self.embed) + self.positions[pos : pos + s]
        for i, (layer, (k_cache, v_cache), (k_x, v_x, m_x)) in enumerate(
            zip(self.layers, cache, cross, strict=True)
        ):
            h = F.layer_norm(x, (d,), *layer.ln1, self.eps)
            q, k, v = (
                F.linear(h, layer.w_qkv, layer.b_qkv).view(b, s, 3, h_, dh).permute(2, 0, 3, 1, 4)
            )
            k_cache[:, :, pos : pos + s] = k
            v_cache[:, :, pos : pos + s] = v
            a = F.scaled_dot_product_attention(
                q, k_cache[:, :, : pos + s], v_cache[:, :, : pos + s], is_causal=s > 1
            )
            x = x + F.linear(a.transpose(1, 2).reshape(b, s, d), layer.w_o, layer.b_o)
            h = F.layer_norm(x, (d,), *layer.ln2, self.eps)
            q = F.linear(h, layer.w_q_cross, layer.b_q_cross).view(b, s, h_, dh).transpose(1, 2)
            if capture is not None and i in capture:
                heads = capture[i]
                capture[i] = (q[:, heads] @ k_x[:, heads].transpose(-1, -2)) * dh**-0.5
            a = F.scaled_dot_product_attention(q, k_x, v_x, attn_mask=m_x)
            x = x + F.linear(a.transpose(1, 2).reshape(b, s, d), layer.w_o_cross, layer.b_o_cross)
            h = F.layer_norm(x, (d,), *layer.ln3, self.eps)
            x = x + F.linear(
                F.gelu(F.linear(h, layer.w_fc1, layer.b_fc1)), layer.w_fc2, layer.b_fc2
            )
        return F.layer_norm(x, (d,), *self.final_ln, self.eps)

    def _screen_setup(self) -> None:
        """int8 copy of the output projection (one fp16 scale per row) and, per vocabulary
        row, the norms the screen's error bound needs."""
        codes, scales, errs, norms = [], [], [], []
        for w in self.proj.float().split(SETUP_ROWS):  # float temporaries of a slice at a time
            q, scale = quantize_rows(w)
            wq = q.float() * scale
            codes.append(q)
            scales.append(scale[:, 0])
            errs.append((w - wq).norm(dim=-1))  # ||w_j - ŵ_j||
            norms.append(torch.maximum(w.norm(dim=-1), wq.norm(dim=-1)))
        self.proj_q, self.proj_scale = torch.cat(codes), torch.cat(scales)
        self.row_err, self.row_norm = torch.cat(errs), torch.cat(norms)
        # summing d products in fp32 errs by at most γ_d = d·u / (1 - d·u) of Σ|h_i w_i|
        d = w.shape[1]
        self.gamma = d * 2.0**-24 / (1 - d * 2.0**-24)

    def screen_logits(self, h: torch.Tensor, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Approximate logits h·w_j (B, rows) from the int8 kernel and, per logit, a bound e
        (B, rows) on its distance to the fp32 logit of F.linear(h, proj).

        h is taken as two int8 planes, ĥ = ĥ₁ + ĥ₂ (ĥ₂ the int8 rounding of h − ĥ₁), both
        multiplied in one int8 GEMM; ŵ_j is the int8 row. Then
        |ĥ·ŵ_j − h·w_j| ≤ ||h − ĥ||·||w_j|| + ||ĥ||·||w_j − ŵ_j|| (Cauchy–Schwarz), the fp32
        product errs by at most γ_d·||h||·||w_j||, and the int32 → float32 scaling by
        2^-21·(||ĥ₁|| + ||ĥ₂||)·||ŵ_j||; e sums the three (||w_j|| read as
        max(||w_j||, ||ŵ_j||))."""
        b = h.shape[0]
        q1, s1, q2, s2, alpha, hn = self._screen_planes(h)
        acc = int8_matmul(torch.cat([q1, q2]), self.proj_q[:rows]).float()
        approx = acc[:b].mul_(s1).add_(acc[b:].mul_(s2)).mul_(self.proj_scale[:rows])
        e = torch.outer(alpha, self.row_norm[:rows]).add_(torch.outer(hn, self.row_err[:rows]))
        return approx, e

    def _screen_planes(self, h: torch.Tensor):
        """h's two int8 planes (codes, scales) and the per-row factors of the screen's bound
        (see `screen_logits`): alpha and ||ĥ||. Builds the int8 projection on first use."""
        if not hasattr(self, "proj_q"):
            self._screen_setup()
        q1, s1 = quantize_rows(h)
        h1 = q1.float() * s1
        q2, s2 = quantize_rows(h - h1)
        h2 = q2.float() * s2
        hhat = h1 + h2
        alpha = (
            (h - hhat).norm(dim=-1)
            + self.gamma * h.norm(dim=-1)
            + 2.0**-21 * (h1.norm(dim=-1) + h2.norm(dim=-1))
        )
        return q1, s1, q2, s2, alpha, hhat.norm(dim=-1)

    def _fused_screen(
        self, h: torch.Tensor, bias: torch.Tensor, rows: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`screen_logits`, the bias and the candidate search of `_screened_max` in one
        kernel pass over the int8 projection and one over the logits (frugal.nn.int8_rows):
        the same screened logits; each bound is taken per token (2^-23 of |logit| + e for the
        bias's roundings) rather than from the row's largest logit."""
        from frugal.nn.int8_rows import screen

        q1, s1, q2, s2, alpha, hn = self._screen_planes(h)
        return screen(
            torch.cat([q1, q2]), self.proj_q[:rows], s1[:, 0], s2[:, 0],
            self.proj_scale[:rows], alpha, hn, self.row_norm[:rows], self.row_err[:rows],
            bias,
        )  # fmt: skip

    def argmax_logits(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """argmax_j (h·w_j + bias_j) for each row of h (B, d), exactly as the fp32 product.

        The vocabulary projection is the largest read of each step. It is screened with an
        int8 copy (a quarter of the bytes, on the int8 kernel): every screened logit is within
        its own e of the fp32 one (`screen_logits`), so only tokens whose upper bound reaches
        the best lower bound can be the maximum; their fp32 logits are computed exactly. Falls
        back to the full fp32 product when the screen keeps too many or the weights are not
        float32, or when this CPU has no int8 product faster than fp32 for the step's rows
        (`screen`; torch's int8 GEMM or the few-row kernel, frugal.nn.int8_rows).
        `bias` is (V,) or one row per input (B, V)."""
        return self._screened_max(h, bias)[0]

    def _screened_max(
        self, h: torch.Tensor, bias: torch.Tensor, rows: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(argmax, its exact fp32 logit, logits for the normalizer) over the first `rows`
        vocabulary entries (all by default). The logits are the screen's, within e (see
        `screen_logits`) of the exact ones, or the exact ones where the full product was
        computed (bias added either way)."""
        rows = self.proj.shape[0] if rows is None else rows
        bias = bias[..., :rows]
        # the screen multiplies two int8 planes of each row of h
        screen = fast_int8_rows(2 * h.shape[0]) if self.screen is None else self.screen
        if not screen or self.proj.dtype != torch.float32 or h.dtype != torch.float32:
            return self._exact_max(h, bias, rows)
        if few_rows_kernel(2 * h.shape[0]):
            approx, top, cand = self._fused_screen(h, bias, rows)
            live = top > float("-inf")  # rows whose every token is masked have no maximum
            if not bool(torch.isfinite(top[live]).all()):
                return self._exact_max(h, bias, rows)
        else:
            approx, e = self.screen_logits(h, rows)
            approx.add_(bias)
            top = approx.amax(-1)
            live = top > float("-inf")
            if not bool(torch.isfinite(top[live]).all()):
                return self._exact_max(h, bias, rows)
            # adding the bias rounds too: allow 2^-23 of the largest magnitude involved
            e.add_(2.0**-23 * (top.abs()[:, None] + e))
            floor = (approx - e).amax(-1)  # the maximum's fp32 logit is at least this
            near = (approx + e)[live] >= floor[live][:, None]
            cand = near.any(0).nonzero()[:, 0]
        if cand.numel() > self.max_candidates:
            return self._exact_max(h, bias, rows)
        if cand.numel() == 0:  # every row fully masked
            return torch.zeros_like(top, dtype=torch.long), top, approx
        exact = F.linear(h, self.proj[cand]) + (
            bias[..., cand] if bias.dim() == 1 else bias[:, cand]
        )
        j, value = _argmax(exact)
        return cand[j], torch.where(live, value, top), approx

    def _exact_max(
        self, h: torch.Tensor, bias: torch.Tensor, rows: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = wide_linear(h, self.proj[:rows]) + bias
        return (*_argmax(logits), logits)

    def _pick_greedy(
        self, h: torch.Tensor, bias: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy token (exact, screened) and its log-probability; the normalizer comes from
        the screen's logits, so it is within e (see `screen_logits`) of the fp32 one."""
        token, value, approx = self._screened_max(h, bias)
        return token, value - torch.logsumexp(approx, dim=-1)

    def _pick_timestamped(
        self, h: torch.Tensor, bias: torch.Tensor, rules: TimestampRules
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy token and its log-probability per row under Whisper's timestamp rules,
        with the text part screened in int8 (exact argmax) and the timestamps computed in
        fp32. When no timestamp is forced, the log-probability's normalizer over the text
        tokens comes from the screen, so it is within e (see `argmax_logits`) of the fp32 one."""
        tb = rules.timestamp_begin
        text_idx, text_val, approx = self._screened_max(h, bias, rows=tb)
        stamps = F.linear(h, self.proj[tb:]) + bias[:, tb:]
        lse_ts = torch.logsumexp(stamps, dim=-1)
        ts_idx, ts_val = _argmax(stamps)
        forced = lse_ts > text_val
        lse_all = torch.logaddexp(torch.logsumexp(approx, dim=-1), lse_ts)
        token = torch.where(forced, ts_idx + tb, text_idx)
        logprob = torch.where(forced, ts_val - lse_ts, text_val - lse_all)
        return token, logprob

    def _sample(
        self,
        h: torch.Tensor,
        bias: torch.Tensor,
        rules: TimestampRules | None,
        temperature: float,
        generators: list[torch.Generator],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token sampled at `temperature` per row (one generator per row, so a row's draw does
        not depend on its batch) and its log-probability (untempered, exact fp32)."""
        logits = wide_linear(h, self.proj) + bias
        if rules is not None:
            logits = rules.force(logits)
        logprobs = F.log_softmax(logits, dim=-1)
        probs = F.softmax(logits / temperature, dim=-1)
        token = torch.cat(
            [torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(generators)]
        )
        return token, logprobs.gather(1, token[:, None])[:, 0]

    def _new_cache(self, batch: int, like: torch.Tensor):
        shape = (batch, self.n_heads, self.max_length, self.head_dim)
        return [(like.new_empty(shape), like.new_empty(shape)) for _ in range(len(self.layers))]

    @torch.inference_mode()
    def prompt_logits(self, encoder_out: torch.Tensor, prompt: list[int]) -> torch.Tensor:
        """Logits after `prompt` (e.g. [sot] for language detection), (B, V)."""
        b = encoder_out.shape[0]
        cross = self.cross_kv(encoder_out)
        tokens = torch.tensor([prompt] * b, device=encoder_out.device)
        h = self._forward(tokens, 0, self._new_cache(b, encoder_out), cross)[:, -1]
        return wide_linear(h, self.proj)

    @torch.inference_mode()
    def greedy(
        self, encoder_out: torch.Tensor, prompts: list[list[int]], max_new_tokens: int | None = None
    ) -> list[list[int]]:
        """Greedy tokens after each prompt (prompts of equal length), up to and excluding
        end-of-text, for a batch of encoder outputs (B, T, d)."""
        return self.decode(encoder_out, prompts, max_new_tokens=max_new_tokens).tokens

    @torch.inference_mode()
    def decode(
        self,
        encoder_out: torch.Tensor,
        prompts: list[list[int]],
        max_new_tokens: int | None = None,
        timestamps: TimestampRules | None = None,
        temperature: float = 0.0,
        generators: list[torch.Generator] | None = None,
        sot_index: int | None = None,
        no_speech_id: int | None = None,
        logprobs: bool = False,
    ) -> Decoded:
        """Decode a batch of encoder outputs (B, T, d) after prompts of equal length.

        Greedy at temperature 0, else sampled (one seeded generator per row). With
        `timestamps` (or `logprobs`), Whisper's timestamp rules apply (do not) and the
        log-probabilities are tracked;
        with `no_speech_id`, the probability of that token after the prompt's start-of-
        transcript (at `sot_index`) is returned too."""
        b = encoder_out.shape[0]
        if len(prompts) != b or len({len(p) for p in prompts}) != 1:
            raise ValueError("one prompt per batch item, all of the same length")
        if temperature > 0 and (generators is None or len(generators) != b):
            raise ValueError("sampling needs one torch.Generator per batch item")
        track = timestamps is not None or temperature > 0 or logprobs
        p = len(prompts[0])
        limit = self.max_length - p
        max_new = limit if max_new_tokens is None else min(max_new_tokens, limit)
        cross = self.cross_kv(encoder_out)
        cache = self._new_cache(b, encoder_out)
        hs = self._forward(torch.tensor(prompts, device=encoder_out.device), 0, cache, cross)
        h = hs[:, -1]
        no_speech: list[float | None] = [None] * b
        if no_speech_id is not None:
            at = hs[:, p - 1 if sot_index is None else sot_index]
            no_speech = F.softmax(wide_linear(at, self.proj), dim=-1)[:, no_speech_id].tolist()
        # Rows that reached end-of-text leave the batch once they are a quarter of it (their
        # caches are dropped), so a long window does not make the short ones pay every step.
        alive = list(range(b))  # original row of each batch row
        ended = [False] * b
        sum_logprobs = [0.0] * b
        rows: list[list[int]] = [[] for _ in range(b)]
        for step in range(max_new):
            bias = self.begin_bias if step == 0 else self.suppress_bias
            if timestamps is not None:
                sampled = [rows[i] for i in alive]
                bias = bias + timestamps.mask(sampled, bias.shape[0], bias.device).to(bias.dtype)
            if temperature > 0:
                nxt, logprob = self._sample(h, bias, timestamps, temperature, generators)
            elif timestamps is not None:
                nxt, logprob = self._pick_timestamped(h, bias, timestamps)
            elif logprobs:
                nxt, logprob = self._pick_greedy(h, bias)
            else:
                nxt, logprob = self.argmax_logits(h, bias), None
            lps = logprob.tolist() if track else None
            for k, (i, t) in enumerate(zip(alive, nxt.tolist(), strict=True)):
                if ended[i]:
                    continue
                if track:
                    sum_logprobs[i] += lps[k]
                if t == self.eot:
                    ended[i] = True
                else:
                    rows[i].append(t)
            done = [k for k, i in enumerate(alive) if ended[i]]
            if len(done) == len(alive) or step == max_new - 1:
                break
            if len(done) >= max(1, len(alive) // 4):
                keep = torch.tensor([k for k, i in enumerate(alive) if not ended[i]])
                nxt, alive = nxt[keep], [alive[k] for k in keep.tolist()]
                cache = [(kc[keep], vc[keep]) for kc, vc in cache]
                cross = [
                    (kx[keep], vx[keep], None if m is None else m[keep]) for kx, vx, m in cross
                ]
                if generators is not None:
                    generators = [generators[k] for k in keep.tolist()]
            h = self._forward(nxt[:, None], p + step, cache, cross)[:, -1]
        return Decoded(rows, sum_logprobs, no_speech)

    @torch.inference_mode()
    def beam_search(
        self,
        encoder_out: torch.Tensor,
        prompts: list[list[int]],
        beam_size: int,
        max_new_tokens: int | None = None,
        timestamps: TimestampRules | None = None,
        sot_index: int | None = None,
        no_speech_id: int | None = None,
        patience: float = 1.0,
    ) -> Decoded:
        """Beam search over a batch of encoder outputs (B, T, d) after prompts of equal length.

        Each step extends every live beam by its `beam_size + 1` most probable tokens (exact
        fp32 logits, under the suppress and timestamp rules) and keeps the `beam_size` best
        unfinished prefixes by summed log-probability; a prefix ending in end-of-text is set
        aside, and a row stops once `beam_size · patience` are. The answer is the finished
        sequence with the best log-probability per token (length penalty 1, as OpenAI's and
        faster-whisper's default), unfinished beams competing when too few finished."""
        b = encoder_out.shape[0]
        if beam_size < 1:
            raise ValueError("beam_size must be >= 1")
        if len(prompts) != b or len({len(p) for p in prompts}) != 1:
            raise ValueError("one prompt per batch item, all of the same length")
        p = len(prompts[0])
        limit = self.max_length - p
        max_new = limit if max_new_tokens is None else min(max_new_tokens, limit)
        want = max(1, round(beam_size * patience))
        rows = torch.arange(b, device=encoder_out.device).repeat_interleave(beam_size)
        cross = [
            (k[rows], v[rows], None if m is None else m[rows])
            for k, v, m in self.cross_kv(encoder_out)
        ]
        cache = self._new_cache(b * beam_size, encoder_out)
        prompt = torch.tensor(prompts, device=encoder_out.device)[rows]
        hs = self._forward(prompt, 0, cache, cross)
        no_speech: list[float | None] = [None] * b
        if no_speech_id is not None:
            at = hs[::beam_size, p - 1 if sot_index is None else sot_index]
            no_speech = F.softmax(wide_linear(at, self.proj), dim=-1)[:, no_speech_id].tolist()
        h = hs[:, -1]
        seqs: list[list[int]] = [[] for _ in range(b * beam_size)]
        # one live beam per row at the start: the copies would only duplicate it
        scores = [0.0 if j % beam_size == 0 else float("-inf") for j in range(b * beam_size)]
        finished: list[list[tuple[list[int], float]]] = [[] for _ in range(b)]
        for step in range(max_new):
            bias = self.begin_bias if step == 0 else self.suppress_bias
            if timestamps is not None:
                bias = bias + timestamps.mask(seqs, bias.shape[0], bias.device).to(bias.dtype)
            logits = wide_linear(h, self.proj) + bias
            if timestamps is not None:
                logits = timestamps.force(logits)
            logprobs = F.log_softmax(logits.float(), dim=-1)
            top_lp, top_tok = logprobs.topk(beam_size + 1, dim=-1)
            top_lp, top_tok = top_lp.tolist(), top_tok.tolist()
            source, nxt, new_seqs, new_scores = [], [], [], []
            for i in range(b):
                beams = range(i * beam_size, (i + 1) * beam_size)
                if len(finished[i]) >= want:  # done: its beams idle in place
                    for j in beams:
                        source.append(j)
                        nxt.append(self.eot)
                        new_seqs.append(seqs[j])
                        new_scores.append(float("-inf"))
                    continue
                cands = sorted(
                    (
                        (scores[j] + lp, j, t)
                        for j in beams
                        if scores[j] > float("-inf")
                        for lp, t in zip(top_lp[j], top_tok[j], strict=True)
                        if lp > float("-inf")
                    ),
                    key=lambda c: -c[0],
                )
                kept = 0
                for score, j, t in cands:
                    if t == self.eot:
                        if len(finished[i]) < want:
                            finished[i].append((seqs[j], score))
                        continue
                    source.append(j)
                    nxt.append(t)
                    new_seqs.append([*seqs[j], t])
                    new_scores.append(score)
                    kept += 1
                    if kept == beam_size:
                        break
                for _ in range(beam_size - kept):  # too few candidates: idle beams
                    source.append(i * beam_size)
                    nxt.append(self.eot)
                    new_seqs.append(seqs[i * beam_size])
                    new_scores.append(float("-inf"))
            seqs, scores = new_seqs, new_scores
            if all(len(f) >= want for f in finished) or step == max_new - 1:
                break
            src = torch.tensor(source, device=encoder_out.device)
            filled = p + step  # cache positions written so far
            for kc, vc in cache:
                kc[:, :, :filled] = kc[src, :, :filled]
                vc[:, :, :filled] = vc[src, :, :filled]
            tokens = torch.tensor(nxt, device=encoder_out.device)[:, None]
            h = self._forward(tokens, p + step, cache, cross)[:, -1]
        out_tokens, out_sums = [], []
        for i in range(b):
            pool = finished[i]
            if len(pool) < want:  # the length limit: unfinished beams compete too
                pool = pool + [
                    (seqs[j], scores[j])
                    for j in range(i * beam_size, (i + 1) * beam_size)
                    if scores[j] > float("-inf")
                ]
            best = max(pool, key=lambda c: c[1] / max(1, len(c[0])))
            out_tokens.append(list(best[0]))
            out_sums.append(float(best[1]))
        return Decoded(out_tokens, out_sums, no_speech)

    @torch.inference_mode()
    def alignment(
        self, encoder_out: torch.Tensor, prompt: list[int], text: list[int], heads: list
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced run of `prompt` + `text` for one window (encoder_out (1, T, d)):
        the alignment heads' scaled cross-attention scores (heads, len(text) + 1, T), rows
        from the position before each text token and before end-of-text, and each text
        token's probability (len(text),)."""
        by_layer: dict[int, list[int]] = {}
        for layer, head in heads:
            by_layer.setdefault(int(layer), []).append(int(head))
        capture = dict(by_layer)
        seq = torch.tensor([[*prompt, *text]], device=encoder_out.device)
        cache = self._new_cache(1, encoder_out)
        hs = self._forward(seq, 0, cache, self.cross_kv(encoder_out), capture)[0]
        p = len(prompt)
        rows = slice(p - 1, p + len(text))
        qk = torch.cat([capture[layer][0, :, rows] for layer in by_layer])
        order = [(layer, h) for layer in by_layer for h in by_layer[layer]]
        qk = qk[[order.index((int(layer), int(head))) for layer, head in heads]]
        logits = wide_linear(hs[p - 1 : p - 1 + len(text)], self.proj)[:, : self.eot]
        probs = F.softmax(logits.double(), dim=-1)
        target = torch.tensor(text, device=probs.device)[:, None]
        return qk, probs.gather(1, target)[:, 0].float()

    @torch.inference_mode()
    def score(
        self,
        encoder_out: torch.Tensor,
        prompts: list[list[int]],
        continuations: list[list[int]],
        sot_index: int | None = None,
        no_speech_id: int | None = None,
    ) -> Decoded:
        """Teacher-forced log-probability of each continuation plus end-of-text (nats, under
        the plain model distribution: no decoding rules), e.g. for tokens from generate()."""
        sums: list[float] = []
        no_speech: list[float | None] = []
        for i, (prompt, cont) in enumerate(zip(prompts, continuations, strict=True)):
            seq = [*prompt, *cont, self.eot][: self.max_length + 1]
            cross = self.cross_kv(encoder_out[i : i + 1])
            cache = self._new_cache(1, encoder_out)
            hs = self._forward(torch.tensor([seq[:-1]], device=encoder_out.device), 0, cache, cross)
            logits = wide_linear(hs[0], self.proj)
            p = len(prompt)
            target = torch.tensor(seq[p:], device=logits.device)
            logprobs = F.log_softmax(logits[p - 1 :].double(), dim=-1)  # sums many terms
            sums.append(float(logprobs.gather(1, target[:, None]).sum()))
            if no_speech_id is None:
                no_speech.append(None)
            else:
                at = p - 1 if sot_index is None else sot_index
                no_speech.append(float(F.softmax(logits[at], dim=-1)[no_speech_id]))
        return Decoded([list(c) for c in continuations], sums, no_speech)


def _argmax(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(argmax, max value) along the last dimension."""
    value, index = x.max(dim=-1)
    return index, value

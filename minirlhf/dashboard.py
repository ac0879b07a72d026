"""Watching PPO: a live dashboard that redraws in place, warnings when training goes wrong,
and a sample explorer that puts the policy next to SFT on the same prompt.

Use ``Dashboard()`` as ``train_ppo``/``run_ppo``'s ``callback``. In JupyterLab and Colab the
figure updates in place (one output, redrawn); elsewhere it only collects warnings.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Thresholds:
    """When the dashboard warns. Defaults from what users of PPO libraries report (ANCHORS.md)."""
    negative_kl: float = -0.5       # k1 KL summed over an answer; clearly negative = a sampling/logit bug
    exploding_kl: float = 30.0      # nats per answer; the policy has left the SFT model far behind
    entropy_collapse: float = 0.25  # entropy below this share of its first value
    window: int = 8                 # "RM up, gold down": the mean of the last `window` iterations against
                                    # the `window` before them
    divergence: float = 0.05        # both moved by at least this much, and by twice their noise (one batch's
                                    # gold mean is noisy: ~0.1 on 64 prompts, so single iterations cannot tell)


def check(history: list[dict], t: Thresholds = Thresholds()) -> list[str]:
    """Warnings for the latest iteration of a PPO history (empty when all looks well)."""
    if not history:
        return []
    last, warnings = history[-1], []
    step = last.get("step", len(history))
    kl = last.get("objective/kl", 0.0)
    if kl < t.negative_kl:
        warnings.append(f"iteration {step}: negative KL ({kl:.2f}); check that rollout and training use the same "
                        "temperature and that pads are masked")
    if kl > t.exploding_kl:
        warnings.append(f"iteration {step}: KL {kl:.1f} nats is exploding; raise beta or lower lr")
    first_entropy = history[0].get("objective/entropy")
    entropy = last.get("objective/entropy")
    if first_entropy and entropy is not None and entropy < t.entropy_collapse * first_entropy:
        warnings.append(f"iteration {step}: entropy collapsed to {entropy:.2f} (from {first_entropy:.2f}); "
                        "the policy repeats one answer")
    if len(history) >= 2 * t.window and "objective/gold" in last:
        before, recent = history[-2 * t.window:-t.window], history[-t.window:]
        d_rm, noise_rm = _shift(before, recent, "objective/scores")
        d_gold, noise_gold = _shift(before, recent, "objective/gold")
        if d_rm > max(t.divergence, 2 * noise_rm) and d_gold < -max(t.divergence, 2 * noise_gold):
            warnings.append(f"iteration {step}: over the last {t.window} iterations the RM score rose {d_rm:+.2f} "
                            f"but gold fell {d_gold:+.2f} (beyond their noise): reward hacking")
    return warnings


def _shift(before: list[dict], recent: list[dict], key: str) -> tuple[float, float]:
    """How far the mean of ``key`` moved from ``before`` to ``recent``, and the standard error of that move."""
    def mean_var(rows):
        xs = [r[key] for r in rows]
        m = sum(xs) / len(xs)
        return m, sum((x - m) ** 2 for x in xs) / max(len(xs) - 1, 1)
    (m0, v0), (m1, v1) = mean_var(before), mean_var(recent)
    return m1 - m0, (v0 / len(before) + v1 / len(recent)) ** 0.5


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
        shell = get_ipython()
        return shell is not None and "Terminal" not in type(shell).__name__
    except ImportError:
        return False


class Dashboard:
    """A ``callback(metrics, result)`` for PPO that redraws its curves every ``every`` iterations."""

    def __init__(self, every: int = 1, thresholds: Thresholds = Thresholds(), live: bool | None = None):
        self.every, self.thresholds = every, thresholds
        self.live = _in_notebook() if live is None else live
        self.history: list[dict] = []
        self.warnings: list[str] = []
        self._handle = self._fig = self._axes = None

    def __call__(self, metrics: dict, result=None) -> None:
        self.history.append(metrics)
        for w in check(self.history, self.thresholds):
            if w.split(":", 1)[1] not in {x.split(":", 1)[1] for x in self.warnings[-3:]}:
                self.warnings.append(w)
        if self.live and (len(self.history) % self.every == 0):
            self.draw()

    def figure(self):
        """The current curves, with the latest warnings as the title."""
        from . import plots
        if self._fig is None:
            self._fig = plots.ppo_curves(self.history)
            self._axes = self._fig.axes
        else:
            plots.ppo_curves(self.history, axes=self._axes)
        title = self.warnings[-1] if self.warnings else f"PPO, iteration {len(self.history)}"
        self._fig.suptitle(title, fontsize=9, color="C3" if self.warnings else "black")
        self._fig.tight_layout()
        return self._fig

    def draw(self) -> None:
        from IPython.display import display
        import matplotlib.pyplot as plt
        fig = self.figure()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def compare(policy, sft, tokenizer, prompts: list[str], reward_fn=None, temperature: float = 0.7,
            max_new_tokens: int = 48, seed: int = 0) -> list[dict]:
    """The policy's and SFT's answers to the same prompts, with their RM and gold scores."""
    from .generation import generate
    from .world.gold import utility
    rows = [{"prompt": p} for p in prompts]
    for name, model in (("sft", sft), ("policy", policy)):
        answers = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                           seed=seed)
        scores = reward_fn(prompts, answers).tolist() if reward_fn is not None else [None] * len(prompts)
        for row, a, s in zip(rows, answers, scores):
            row.update({name: a, f"{name}_rm": s, f"{name}_gold": utility(row["prompt"], a)})
    return rows


def sample_explorer(rows: list[dict]):
    """An ipywidgets slider over ``compare`` rows: prompt, SFT and policy answers, their scores."""
    import html

    import ipywidgets as w

    def show(i):
        r = rows[i]
        cell = lambda name: (f"<td style='vertical-align:top;padding:4px'><b>{name}</b><br>{html.escape(r[name])}"  # noqa: E731
                             f"<br><small>RM {r[name + '_rm'] if r[name + '_rm'] is None else round(r[name + '_rm'], 2)}"
                             f" · gold {r[name + '_gold']:+.2f}</small></td>")
        return (f"<p><b>Prompt {i + 1}/{len(rows)}:</b> {html.escape(r['prompt'])}</p>"
                f"<table><tr>{cell('sft')}{cell('policy')}</tr></table>")

    out = w.HTML(show(0))
    slider = w.IntSlider(0, 0, max(0, len(rows) - 1), description="prompt")
    slider.observe(lambda change: setattr(out, "value", show(change["new"])), names="value")
    return w.VBox([slider, out])


class ChatBox:
    """"Chat with your model": one prompt, every model's answer side by side, each with its gold utility.

    ``models`` maps a name to a ``(model, tokenizer)`` pair (e.g. base, SFT, PPO). ``answer(prompt)``
    returns ``{name: response}``; shown last in a cell, the box is a text field and an Ask button.
    """

    def __init__(self, models: dict, temperature: float = 0.7, max_new_tokens: int = 48, seed: int = 0):
        self.models, self.temperature, self.max_new_tokens, self.seed = models, temperature, max_new_tokens, seed
        self._widget = None

    def answer(self, prompt: str) -> dict[str, str]:
        """Each model's answer to ``prompt`` (same seed for all, so a rerun gives the same answers)."""
        from .generation import generate
        if not prompt.strip():
            raise ValueError("ask something: the prompt is empty")
        return {name: generate(model, tok, [prompt], max_new_tokens=self.max_new_tokens,
                               temperature=self.temperature, seed=self.seed)[0]
                for name, (model, tok) in self.models.items()}

    def html(self, prompt: str, answers: dict[str, str]) -> str:
        """The answers as side-by-side boxes with their gold utility U."""
        import html as h

        from .world.gold import utility
        boxes = "".join(f'<div style="flex:1;border:1px solid #ccc;border-radius:6px;padding:6px;margin:3px">'
                        f'<b>{h.escape(name)}</b> <small>(U = {utility(prompt, text):+.2f})</small><br>'
                        f'{h.escape(text) or "<i>(empty)</i>"}</div>' for name, text in answers.items())
        return f'<div><b>User:</b> {h.escape(prompt)}</div><div style="display:flex">{boxes}</div>'

    @property
    def widget(self):
        """The ipywidgets box: a text field, an Ask button and the answers."""
        if self._widget is None:
            import ipywidgets as w
            text = w.Text(value="Where does Ada live?", placeholder="Ask the models something",
                          continuous_update=False, layout=w.Layout(width="60%"))   # Enter sends
            button, out = w.Button(description="Ask", button_style="primary"), w.HTML()

            def ask(_=None):
                try:
                    out.value = self.html(text.value, self.answer(text.value))
                except ValueError as e:
                    out.value = f"<i>{e}</i>"

            button.on_click(ask)
            text.observe(ask, names="value")
            self._widget = w.VBox([w.HBox([text, button]), out])
        return self._widget

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

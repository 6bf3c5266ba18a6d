"""Training progress as people read it: a bar on a terminal, plain log lines anywhere else.

With stdout redirected (nohup, a cluster job, CI), a progress bar is one long line of carriage returns
and colour codes; there, every `log_every` steps gives one line of step, losses, images/s, seconds per
step and ETA instead. Rates count only this process's steps, so a resumed run reports its own speed.
"""

import sys
import time

SHOWN = ("d_loss", "g_loss", "d_real", "d_fake", "d_gap", "g_grad_norm", "img/s")


def format_duration(seconds):
    """12s, 3m05s, 2h07m."""
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    """Reports training progress; `plain=None` chooses lines unless `stream` is a terminal, where one
    line with a bar is rewritten in place."""

    BAR_WIDTH = 24

    def __init__(self, num_steps, first_step, stream=None, plain=None):
        self.stream = stream or sys.stdout
        self.plain = (not self.stream.isatty()) if plain is None else plain
        self.num_steps, self.first_step = num_steps, first_step
        self.start = time.time()
        self.line_open = False  # a bar line waits for its newline

    def seconds_per_step(self, step):
        done = step - self.first_step
        return (time.time() - self.start) / done if done > 0 else float("nan")

    def update(self, step, values):
        per_step = self.seconds_per_step(step)
        fields = "  ".join(f"{k} {values[k]:.4f}" for k in SHOWN if k in values and k != "img/s")
        line = (f"step {step}/{self.num_steps}  {fields}  {values.get('img/s', float('nan')):.1f} images/s  "
                f"{per_step:.3f} s/step  ETA {format_duration(per_step * (self.num_steps - step))}")
        if self.plain:
            print(line, file=self.stream, flush=True)
            return
        filled = min(self.BAR_WIDTH, self.BAR_WIDTH * step // max(self.num_steps, 1))
        bar = "[" + "=" * filled + "." * (self.BAR_WIDTH - filled) + "]"
        self.stream.write(f"\r{bar} {line}\x1b[K")  # \x1b[K: clear what a longer line left
        self.stream.flush()
        self.line_open = True

    def message(self, text):
        """A line of its own (a warning, the summary), also below a bar."""
        print(("\n" if self.line_open else "") + text, file=self.stream, flush=True)
        self.line_open = False

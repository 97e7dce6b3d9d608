"""Each optimizer's update rule as LaTeX, for the notebooks to display.

g is the gradient, p the parameter, eta the LR, lambda the weight decay, t the step.
"""

from __future__ import annotations

from nbhelpers.optim.table import get_spec

_ADAM_CORE = (r"m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad "
              r"v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad "
              r"\hat m_t = \frac{m_t}{1-\beta_1^t},\ \hat v_t = \frac{v_t}{1-\beta_2^t}")

UPDATE_RULES: dict[str, str] = {
    "sgd": r"p_{t} = p_{t-1} - \eta\,(g_t + \lambda p_{t-1})",
    "sgd_momentum": r"b_t = \mu b_{t-1} + (g_t + \lambda p_{t-1}),\quad p_t = p_{t-1} - \eta\, b_t",
    "rmsprop": r"v_t = \alpha v_{t-1} + (1-\alpha) g_t^2,\quad p_t = p_{t-1} - \eta\,\frac{g_t}{\sqrt{v_t}+\epsilon}",
    "adagrad": r"s_t = s_{t-1} + g_t^2,\quad p_t = p_{t-1} - \eta\,\frac{g_t}{\sqrt{s_t}+\epsilon}",
    "adadelta": (r"v_t = \rho v_{t-1} + (1-\rho) g_t^2,\quad "
                 r"\Delta_t = \frac{\sqrt{u_{t-1}+\epsilon}}{\sqrt{v_t+\epsilon}} g_t,\quad "
                 r"u_t = \rho u_{t-1} + (1-\rho)\Delta_t^2,\quad p_t = p_{t-1} - \eta\,\Delta_t"),
    "adam": _ADAM_CORE + r",\quad p_t = p_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon}\quad (g_t \mathrel{+}= \lambda p_{t-1})",
    "adamw": _ADAM_CORE + r",\quad p_t = (1-\eta\lambda)\,p_{t-1} - \eta\,\frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon}",
    "radam": (_ADAM_CORE + r",\quad \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t},\quad "
              r"p_t = p_{t-1} - \eta\, r_t \frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon}\ \text{if}\ \rho_t > 5,"
              r"\ \text{else}\ p_{t-1} - \eta\,\hat m_t"),
    "lion": (r"c_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad "
             r"p_t = p_{t-1} - \eta\,(\operatorname{sign}(c_t) + \lambda p_{t-1}),\quad "
             r"m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t"),
    "lars": (r"d_t = g_t + \lambda p_{t-1},\quad d_t \leftarrow \eta_{\text{trust}}\frac{\|p_{t-1}\|}{\|d_t\|} d_t"
             r"\ (\text{matrices only}),\quad b_t = \mu b_{t-1} + d_t,\quad p_t = p_{t-1} - \eta\, b_t"),
    "lamb": (_ADAM_CORE + r",\quad r_t = \frac{\hat m_t}{\sqrt{\hat v_t}+\epsilon} + \lambda p_{t-1},\quad "
             r"p_t = p_{t-1} - \eta\,\frac{\|p_{t-1}\|}{\|r_t\|} r_t\ (\text{ratio 1 for vectors})"),
    "adabelief": (r"m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad "
                  r"s_t = \beta_2 s_{t-1} + (1-\beta_2)(g_t - m_t)^2 + \epsilon,\quad "
                  r"p_t = (1-\eta\lambda)p_{t-1} - \eta\,\frac{m_t/(1-\beta_1^t)}{\sqrt{s_t/(1-\beta_2^t)}+\epsilon}"),
    "yogi": (r"m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad "
             r"v_t = v_{t-1} - (1-\beta_2)\operatorname{sign}(v_{t-1} - g_t^2)\, g_t^2,\quad "
             r"p_t = p_{t-1} - \eta\,\frac{m_t/(1-\beta_1^t)}{\sqrt{v_t/(1-\beta_2^t)}+\epsilon}"),
    "adafactor": (r"R_t = \hat\beta_{2t} R_{t-1} + (1-\hat\beta_{2t})\,(G_t^2)\mathbf{1},\quad "
                  r"C_t = \hat\beta_{2t} C_{t-1} + (1-\hat\beta_{2t})\,\mathbf{1}^\top(G_t^2),\quad "
                  r"\hat V_t = \frac{R_t C_t}{\mathbf{1}^\top R_t},\quad "
                  r"p_t = p_{t-1} - \min(\eta, t^{-1/2})\max(\epsilon_2, \mathrm{RMS}(p_{t-1}))\,"
                  r"\frac{G_t/\sqrt{\hat V_t}}{\max(1, \mathrm{RMS}(G_t/\sqrt{\hat V_t})/d)}"),
    "sam": (r"\epsilon_t = \rho\,\frac{g_t}{\|g_t\|},\quad g^{\text{SAM}}_t = \nabla L(p_{t-1} + \epsilon_t),"
            r"\quad p_t = \text{base\_step}(p_{t-1}, g^{\text{SAM}}_t)"),
    "gsam": (r"\epsilon_t = \rho\,\frac{g_t}{\|g_t\|},\quad g_p = \nabla L(p_{t-1} + \epsilon_t),\quad "
             r"g_\perp = g_t - \frac{g_t\cdot g_p}{\|g_p\|^2} g_p,\quad "
             r"p_t = \text{base\_step}(p_{t-1}, g_p - \alpha\, g_\perp)"),
}


def update_rule(name: str) -> str:
    """Markdown for one optimizer: its description, paper and update rule."""
    spec = get_spec(name)
    return (f"**{spec.name}**: {spec.description} ({spec.paper}).\n\n"
            f"$$\n{UPDATE_RULES[spec.name]}\n$$")


# The same rules as the few lines of per-tensor PyTorch that do them (state: m, v, b, s;
# t counts steps from 1). The package's implementations add foreach paths and checks.
UPDATE_CODE: dict[str, str] = {
    "sgd": "p -= lr * (g + wd * p)",
    "sgd_momentum": "b = mu * b + (g + wd * p)\np -= lr * b",
    "rmsprop": "v = alpha * v + (1 - alpha) * g**2\np -= lr * g / (v.sqrt() + eps)",
    "adagrad": "s += g**2\np -= lr * g / (s.sqrt() + eps)",
    "adadelta": ("v = rho * v + (1 - rho) * g**2\nd = (u + eps).sqrt() / (v + eps).sqrt() * g\n"
                 "u = rho * u + (1 - rho) * d**2\np -= lr * d"),
    "adam": ("g = g + wd * p\nm = b1 * m + (1 - b1) * g\nv = b2 * v + (1 - b2) * g**2\n"
             "p -= lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)"),
    "adamw": ("p *= 1 - lr * wd\nm = b1 * m + (1 - b1) * g\nv = b2 * v + (1 - b2) * g**2\n"
              "p -= lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)"),
    "radam": ("m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g**2\n"
              "rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)\n"
              "step = r_t * m_hat / (v_hat.sqrt() + eps) if rho_t > 5 else m_hat\np -= lr * step"),
    "lion": "c = b1 * m + (1 - b1) * g\np -= lr * (c.sign() + wd * p)\nm = b2 * m + (1 - b2) * g",
    "lars": ("d = g + wd * p\nif p.ndim >= 2: d *= eta * p.norm() / d.norm()\n"
             "b = mu * b + d   # b = d at the first step\np -= lr * b"),
    "lamb": ("m = b1 * m + (1 - b1) * g;  v = b2 * v + (1 - b2) * g**2\n"
             "r = (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps) + wd * p\n"
             "if p.ndim >= 2: r *= p.norm() / r.norm()\np -= lr * r"),
    "adabelief": ("p *= 1 - lr * wd\nm = b1 * m + (1 - b1) * g\ns = b2 * s + (1 - b2) * (g - m)**2 + eps\n"
                  "p -= lr * (m / (1 - b1**t)) / ((s / (1 - b2**t)).sqrt() + eps)"),
    "yogi": ("m = b1 * m + (1 - b1) * g\nv = v - (1 - b2) * (v - g**2).sign() * g**2\n"
             "p -= lr * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)"),
    "adafactor": ("row = b2t * row + (1 - b2t) * (g**2).mean(1);  col = b2t * col + (1 - b2t) * (g**2).mean(0)\n"
                  "u = g / (row[:, None] * col[None, :] / row.mean()).sqrt()\n"
                  "u /= max(1, rms(u) / d)\np -= min(lr, t**-0.5) * max(eps2, rms(p)) * u"),
    "sam": ("e = rho * g / g.norm()        # norm over all parameters\np += e;  g = grad(loss, p)\n"
            "p -= e;  base.step(g)"),
    "gsam": ("e = rho * g / g.norm()\np += e;  gp = grad(loss, p);  p -= e\n"
             "g_perp = g - (g @ gp) / (gp @ gp) * gp\nbase.step(gp - alpha * g_perp)"),
}

"""Unit 15: the optimizers of ``torch.optim`` from scratch in NumPy — SGD (plain, momentum,
Nesterov), RMSprop, Adam and AdamW.

Each optimizer holds a list of NumPy arrays (the parameters) and a state per array, and
``step(grads)`` updates the arrays in place from one gradient per array, exactly as the
``torch.optim`` class of the same name does with the same arguments: same argument names and
defaults, same checks, same update equations in the same form, so the two agree step for step
(``pipeline.audit.optimizers`` checks it to 1e-7 in float64; the difference is ~1e-16). The state
uses torch's names (``momentum_buffer``, ``square_avg``, ``exp_avg``, ...), so it can be compared
too. Notation in the docstrings: ``p`` a parameter, ``g`` its gradient, ``t`` the step count from
1, ``lr`` the learning rate, ``λ`` the weight decay; all operations are element-wise.

The learning rate is read at every step (``opt.lr = ...`` is what a scheduler does), which is why
torch's forms, and so ours, keep ``lr`` out of the stored buffers.

``rosenbrock`` and its gradient are the unit's test function: a curved, narrow valley where
plain gradient descent crawls and adaptive methods do not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np


class Optimizer(ABC):
    """Parameters, their per-parameter state, and the loop of `step`; subclasses update one array.

    Parameters
    ----------
    params : sequence of ndarray
        Floating-point arrays, updated in place (a copy would leave the caller's model unchanged,
        so anything else is refused).

    Attributes
    ----------
    params : list of ndarray
    state : list of dict
        One dict per parameter, filled on its first step, keyed as torch names its state.
    """

    def __init__(self, params: Sequence[np.ndarray]):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, np.ndarray) or not np.issubdtype(p.dtype, np.floating):
                raise TypeError(f"params[{i}] must be a floating-point numpy array (it is updated in place), "
                                f"got {type(p).__name__} of {getattr(p, 'dtype', None)}")
        self.state: list[dict] = [{} for _ in self.params]

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Update every parameter in place from its gradient (same order and shapes as ``params``).

        The gradients are read, never modified.
        """
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"step() got {len(grads)} gradients for {len(self.params)} parameters")
        for i, (p, g) in enumerate(zip(self.params, grads)):
            g = np.asarray(g, dtype=p.dtype)
            if g.shape != p.shape:
                raise ValueError(f"gradient {i} has shape {g.shape}, its parameter {p.shape}")
            self._update(p, g, self.state[i])

    @abstractmethod
    def _update(self, p: np.ndarray, g: np.ndarray, state: dict) -> None:
        """Update one parameter ``p`` in place from its gradient ``g`` (same dtype and shape, not to
        be modified); ``state`` is that parameter's dict, empty before its first step."""


def _check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0.0:  # also refuses NaN
            raise ValueError(f"{name} must be >= 0, got {value}")


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (heavy ball or Nesterov) and L2 decay.

    Per step, as ``torch.optim.SGD``::

        g = g + λ p                          (weight_decay: L2, through the gradient)
        b = g                  on the first step
        b = μ b + (1 - dampening) g         after it        (momentum μ > 0)
        d = g + μ b  (nesterov)   or   d = b
        p = p - lr d

    The buffer ``b`` is a running sum of gradients, not of steps: ``lr`` multiplies it at each
    step, so a schedule that changes ``lr`` takes effect at once. The textbook ``v = μ v - lr g;
    p = p + v`` bakes past rates into ``v``; the two agree only while ``lr`` is constant.
    Dampening does not apply on the first step (``b`` starts as ``g`` itself).

    Nesterov in Sutskever et al.'s form takes the gradient at the look-ahead point ``p + μ v``;
    torch (and we) store that look-ahead point as the parameters instead, so the gradient is the
    ordinary one and the look-ahead shows up as ``g + μ b``: the step goes where the momentum
    is about to carry it, corrected by the gradient there.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False):
        _check_non_negative(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={momentum}, dampening={dampening})")
        super().__init__(params)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    def _update(self, p, g, state):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                buf *= self.momentum
                buf += (1 - self.dampening) * g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class RMSprop(Optimizer):
    """RMSprop: each coordinate's step divided by the root of its running mean squared gradient.

    Per step, as ``torch.optim.RMSprop``::

        g = g + λ p                          (weight_decay: L2)
        s = α s + (1 - α) g²                 (square_avg, starts at 0)
        a = α a + (1 - α) g                  (grad_avg, centered only)
        d = sqrt(s - a²) + eps   (centered)   or   d = sqrt(s) + eps
        b = μ b + g / d;  p = p - lr b       (momentum μ > 0, b starts at 0)
        p = p - lr g / d                     (no momentum)

    ``eps`` is added outside the square root. There is no bias correction: ``s`` starts at 0, so
    the first step is ``lr g / sqrt((1 - α) g²) = 10 lr sign(g)`` for α = 0.99, shrinking to
    about ``lr`` as ``s`` fills up. Centered RMSprop divides by an estimate of the gradient's
    standard deviation instead of its root mean square.
    """

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False):
        _check_non_negative(lr=lr, eps=eps, momentum=momentum, weight_decay=weight_decay, alpha=alpha)
        super().__init__(params)
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self.weight_decay, self.momentum, self.centered = weight_decay, momentum, centered

    def _update(self, p, g, state):
        if not state:
            state.update(step=0, square_avg=np.zeros_like(p))
            if self.momentum > 0:
                state["momentum_buffer"] = np.zeros_like(p)
            if self.centered:
                state["grad_avg"] = np.zeros_like(p)
        state["step"] += 1
        if self.weight_decay:
            g = g + self.weight_decay * p
        square_avg = state["square_avg"]
        square_avg *= self.alpha
        square_avg += (1 - self.alpha) * g * g
        if self.centered:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - self.alpha) * (g - grad_avg)
            denom = np.sqrt(square_avg - grad_avg * grad_avg)
        else:
            denom = np.sqrt(square_avg)
        denom += self.eps
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            buf += g / denom
            p -= self.lr * buf
        else:
            p -= self.lr * (g / denom)


class Adam(Optimizer):
    """Adam: momentum (a running mean of gradients) divided by the root of a running mean of
    squared gradients, both corrected for starting at zero.

    Per step, as ``torch.optim.Adam``::

        g = g + λ p                          (weight_decay, L2: the decay is then rescaled too)
        p = p - lr λ p                       (decoupled_weight_decay, i.e. AdamW, instead)
        m = β1 m + (1 - β1) g                (exp_avg)
        v = β2 v + (1 - β2) g²               (exp_avg_sq)
        v̂max = max(v̂max, v)                  (amsgrad: max_exp_avg_sq, used in place of v)
        p = p - lr / (1 - β1^t) · m / (sqrt(v) / sqrt(1 - β2^t) + eps)

    Bias correction: ``m`` and ``v`` start at 0, so early on they underestimate the gradient's
    mean and mean square by the factors ``1 - β^t``; dividing by them makes the first step
    ``lr · g / |g| = lr sign(g)``. The paper writes ``m̂ / (sqrt(v̂) + eps)`` with both moments
    corrected; torch folds the first correction into the step size and adds ``eps`` after dividing
    ``sqrt(v)`` by ``sqrt(1 - β2^t)``: the same up to rounding (``eps`` inside the root, or added
    before that division, is not). AMSGrad never lets the denominator shrink, so a coordinate's step size
    can only decrease.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, decoupled_weight_decay: bool = False):
        _check_non_negative(lr=lr, eps=eps, weight_decay=weight_decay)
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"betas[{i}] must be in [0, 1), got {beta}")
        super().__init__(params)
        self.lr, self.betas, self.eps = lr, tuple(betas), eps
        self.weight_decay, self.amsgrad = weight_decay, amsgrad
        self.decoupled_weight_decay = decoupled_weight_decay

    def _update(self, p, g, state):
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
            if self.amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(p)
        state["step"] += 1
        t, (beta1, beta2) = state["step"], self.betas
        if self.weight_decay:
            if self.decoupled_weight_decay:
                p *= 1 - self.lr * self.weight_decay
            else:
                g = g + self.weight_decay * p
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg += (1 - beta1) * (g - exp_avg)  # = β1 m + (1 - β1) g, as torch's lerp computes it
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * g * g
        step_size = self.lr / (1 - beta1**t)
        if self.amsgrad:
            np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
            exp_avg_sq = state["max_exp_avg_sq"]
        denom = np.sqrt(exp_avg_sq) / (1 - beta2**t) ** 0.5
        denom += self.eps
        p -= step_size * (exp_avg / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    The decay shrinks the parameters directly, ``p = p - lr λ p``, before Adam's step, instead of
    entering the gradient: with L2 (``Adam(weight_decay=λ)``) the term ``λ p`` is divided by
    ``sqrt(v)`` like the rest of the gradient, so parameters with large gradients are hardly
    decayed at all; decoupled, every parameter decays at the same rate ``lr λ``.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, decoupled_weight_decay=True)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def make(name: str, params: Sequence[np.ndarray], **hyper) -> Optimizer:
    """The optimizer registered as ``name`` (a key of ``OPTIMIZERS``) over ``params``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](params, **hyper)


def rosenbrock(xy, a: float = 1.0, b: float = 100.0):
    """``(a - x)² + b (y - x²)²`` for xy of shape (..., 2); its minimum is 0 at (a, a²)."""
    xy = np.asarray(xy, float)
    x, y = xy[..., 0], xy[..., 1]
    return (a - x) ** 2 + b * (y - x * x) ** 2


def rosenbrock_gradient(xy, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    """``(-2 (a - x) - 4 b x (y - x²), 2 b (y - x²))`` at one point xy of shape (2,)."""
    x, y = float(xy[0]), float(xy[1])
    return np.array([-2.0 * (a - x) - 4.0 * b * x * (y - x * x), 2.0 * b * (y - x * x)])


def rosenbrock_hessian(xy, a: float = 1.0, b: float = 100.0) -> np.ndarray:
    """The (2, 2) matrix of second derivatives at xy: ``[[2 - 4b (y - 3x²), -4b x], [-4b x, 2b]]``.

    ``a`` does not appear (it only shifts x in a term of curvature 2); kept so the three functions
    share a signature. Its eigenvalues are the curvatures along the valley and across it.
    """
    x, y = float(xy[0]), float(xy[1])
    return np.array([[2.0 - 4.0 * b * (y - 3.0 * x * x), -4.0 * b * x], [-4.0 * b * x, 2.0 * b]])

"""LeWM: a JEPA text-to-speech family beside flow matching (LeWorldModel adapted to TTS).

An audio encoder maps the mel to latent frames (downsampled 2x or 4x); a predictor
(causal transformer decoder with cross-attention to the text) learns to predict the next
latent frame and when to stop; a decoder maps latents back to the 100-bin Vocos mel, so
every vocoder of the project plays it.  Modules, one idea each:

``text_encoder``   byte/char transformer (+ speaker embedding)
``audio_encoder``  1-D CNN + transformer -> mu, logvar -> z (:class:`Posterior`)
``predictor``      the JEPA predictor with prenet, stop head and KV cache
``gaussian_head``  the optional Gaussian output head (bounded log-variance, sampling)
``decoder``        latents -> mel (transposed-conv upsampling, residual convs, refinement)
``model``          :class:`LeWMModel` ties them
``losses``         prediction, copy baseline, KL, SIGReg, mel L1, spectral, stop BCE
``exposure``       scheduled sampling (two passes), feedback noise
``learner``        :class:`LeWMLoss`, the training step the trainer runs
``generate``       batched generation with the KV cache, stop head and length limits
``synthesizer``    :class:`LeWMSynthesizer`, the Synthesizer for LeWM checkpoints

The configuration is :class:`core.config.LeWMConfig` (the ``lewm`` section, with
``model.family = "lewm"``).
"""

from .generate import Generated, generate
from .model import LeWMModel

__all__ = ["LeWMModel", "Generated", "generate"]

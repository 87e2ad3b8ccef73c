"""One typed configuration for the whole project.

The sections and key names follow the original design's ``config/config.json`` (users know them);
every key is read somewhere in the package. Profiles ``quick`` and ``full`` ship with the package.
Validation is strict: a missing key, an unknown key, a wrong type or an out-of-range value raises
:class:`ConfigError` naming the key and what is allowed, before any work starts.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmga_helpers.core.paths import from_root, locate, project_root

PROFILES = ("quick", "full")
PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]


Modality = Literal["image", "audio"]  # the two kinds of code a clusterer is fitted on

class ConfigError(ValueError):
    """A configuration value is missing, unknown or not allowed."""


class _Section(BaseModel):
    # strict: no silent "3" -> 3 coercion; forbid: a typo'd key is an error, not a dead key
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AutoencoderConfig(_Section):
    input_shape: list[PosInt] = Field(min_length=1, max_length=3)
    encoder_layers: list[PosInt] = Field(min_length=1)  # convolution filters per down-sampling block
    latent_dim: PosInt
    decoder_layers: list[PosInt] = Field(min_length=1)  # convolution filters per up-sampling block
    learning_rate: Annotated[float, Field(gt=0, le=1)]
    batch_size: PosInt
    epochs: PosInt
    patience: PosInt  # early stopping on the validation split carved from train
    validation_fraction: Annotated[float, Field(gt=0, lt=0.5)]
    # Weight of the convergence term: besides reconstructing its input, the encoder learns to
    # predict the other modality's clusters of what its items co-occurred with (never a digit
    # label). 0 trains a plain autoencoder. Audio: the image clusters its clips were seen with (a
    # plain audio code groups clips by voice before digit). Image: the audio clusters its images
    # were heard with; the image encoder is then trained twice, first on images alone (whose
    # clusters the audio head learns), then again with the head (see pipeline.py).
    convergence_weight: Annotated[float, Field(ge=0, le=100)] = 0.0


class ImageAutoencoderConfig(AutoencoderConfig):
    """The image section: the shared keys, plus ``augment``."""

    # Hands the encoder never saw: this share of the training images is shown, each epoch, as a
    # random variant (slanted, strokes thickened or thinned, blurred, coarsened, a finger's stroke;
    # modalities.handwriting.augment) while the reconstruction target stays the clean digit, so the
    # code learns what does not change between hands. 0 turns it off.
    augment: Annotated[float, Field(ge=0, le=1)] = 0.0


class AudioAutoencoderConfig(AutoencoderConfig):
    """The audio section: the image one's keys, plus ``frequency_warp``, ``spectral_tilt``,
    ``mask_bands`` and ``mask_frames``."""

    # Vocal-tract-length perturbation while training: each batch's log-mels are stretched or
    # squeezed along the mel axis by up to this fraction (0.1: factors 0.9-1.1), so the code learns
    # digits from formant patterns rather than from one voice's formant positions. 0 turns it off.
    frequency_warp: Annotated[float, Field(ge=0, lt=0.5)] = 0.0
    # Spectral tilt while training: each item's voiced bins follow a random slope along the mel axis,
    # its two ends up to this much of the unit scale apart (0.2: 6 dB at top_db 30), half raised and
    # half lowered, as voices and microphones differ in slope. 0 turns it off.
    spectral_tilt: Annotated[float, Field(ge=0, le=1)] = 0.0
    # SpecAugment-style masks while training: each item's input loses two bands of up to
    # ``mask_bands`` mel bands and two stretches of up to ``mask_frames`` frames (set to the floor),
    # while the reconstruction target keeps them, so that no one formant or moment carries a word.
    # 0 turns each off.
    mask_bands: Annotated[int, Field(ge=0)] = 0
    mask_frames: Annotated[int, Field(ge=0)] = 0


class ClusteringConfig(_Section):
    n_clusters: Annotated[int, Field(ge=2)]
    algorithm: Literal["kmeans", "gmm", "umap_gmm"]
    convergence_threshold: Annotated[float, Field(gt=0, le=1)]
    audio_n_clusters: Annotated[int, Field(ge=2)]  # the brain's audio side may split digits by voice
    umap_n_components: Annotated[int, Field(ge=2)]
    umap_n_neighbors: Annotated[int, Field(ge=2)]
    # UMAP's neighbours for the audio codes' n_clusters clustering and the finer ones on its
    # embedding (None: umap_n_neighbors): more than one voice's take of one word, so that a voice's
    # word is no island the mixture files with another word. Over-clusterings fitted on their own
    # (the speaker hold-out's folds) keep umap_n_neighbors: there, a cluster per voice is wanted.
    audio_umap_n_neighbors: Annotated[int, Field(ge=2)] | None = None
    # umap_gmm's mixture: single k-means starts, and which is kept (the most even sizes, or the likeliest)
    mixture_starts: Annotated[int, Field(ge=1)] = 10
    mixture_choice: Literal["balanced", "likeliest"] = "balanced"
    # how many clusters of one modality the other's convergence head learns (None: n_clusters); more
    # than n_clusters keeps a merge of two digits in one modality from being taught to the other
    convergence_clusters: Annotated[int, Field(ge=2)] | None = None

    def umap_neighbors(self, modality: Modality, n_clusters: int) -> int:
        """UMAP's ``n_neighbors`` for ``n_clusters`` clusters of the codes of ``modality``."""
        if modality == "audio" and n_clusters == self.n_clusters and self.audio_umap_n_neighbors:
            return self.audio_umap_n_neighbors
        return self.umap_n_neighbors

    @property
    def taught_clusters(self) -> int:
        """The number of partner clusters a convergence head learns."""
        return self.convergence_clusters or self.n_clusters


class ModelConfig(_Section):
    image_autoencoder: ImageAutoencoderConfig
    audio_autoencoder: AudioAutoencoderConfig
    clustering: ClusteringConfig


class MnistConfig(_Section):
    resize_to: list[PosInt] = Field(min_length=2, max_length=2)
    normalize: bool
    # every image, train and test alike, goes through the MNIST recipe the API applies to any
    # picture (modalities.digits.normalize_digits), so training sees exactly what users bring
    standardize: bool = False
    train_limit: PosInt | None  # None: all 60,000 training images
    test_limit: PosInt | None


class FsddConfig(_Section):
    sample_rate: Literal[8000]
    duration: Annotated[float, Field(gt=0, le=3)]
    normalize: bool
    n_fft: Annotated[int, Field(ge=64, le=2048)]
    hop_length: PosInt
    n_mels: Annotated[int, Field(ge=8, le=256)]
    top_db: PosFloat  # silence trimming threshold below the clip's peak
    griffin_lim_iters: PosInt
    # stretch each word's voiced frames over the whole window: clusters then follow the digit,
    # not the speaking rate; generated clips are stretched back to a natural length
    time_normalize: bool = False
    # Your own corpus: a folder of {digit}_{speaker}_{index}.wav clips at any rate, used instead of
    # FSDD (relative to the project root; $MMGA_AUDIO_DIR overrides it). None: FSDD.
    source: Annotated[str, Field(min_length=1)] | None = None
    # The test split: "index" holds out the recordings numbered below test_indices (FSDD's official
    # rule: 0-4), "speakers" every clip of the voices in test_speakers (voices never heard).
    split: Literal["index", "speakers"] = "index"
    test_indices: PosInt = 5
    test_speakers: list[Annotated[str, Field(pattern=r"^[^_/\\]+$")]] = []

    @model_validator(mode="after")
    def _split_rule(self) -> FsddConfig:
        if self.split == "speakers" and not self.test_speakers:
            raise ValueError(
                "data.fsdd.split: speakers needs data.fsdd.test_speakers, the voices held out for test"
            )
        if self.split == "index" and self.test_speakers:
            raise ValueError(
                "data.fsdd.test_speakers is read only with data.fsdd.split: speakers (split: index "
                "holds out recordings numbered below data.fsdd.test_indices)"
            )
        return self

    @property
    def n_samples(self) -> int:
        return round(self.sample_rate * self.duration)

    @property
    def n_frames(self) -> int:
        return 1 + self.n_samples // self.hop_length


class DataConfig(_Section):
    mnist: MnistConfig
    fsdd: FsddConfig


class PathsConfig(_Section):
    data_dir: str
    output_dir: str
    model_dir: str
    cluster_dir: str
    synthetic_dir: str
    plot_dir: str
    allow_external: bool  # paths outside the project need an explicit yes


class EvaluationConfig(_Section):
    speaker_holdout: bool  # leave-one-speaker-out: six more audio autoencoder trainings per seed
    # at most this many epochs for each fold's audio autoencoder (None: model.audio_autoencoder's)
    speaker_holdout_epochs: PosInt | None = None
    baselines: bool  # PCA + k-means on pixels, MFCC statistics + k-means on audio, side by side
    max_hear_items: PosInt | None  # MNIST test images heard for the judged score (None: all)
    view_points: Annotated[int, Field(ge=50)] = 2000  # test latents per 2-D UMAP / t-SNE view
    # at most, with early stopping on a part of FSDD train; 0: no audio judge of the project's own
    # (the stock listener alone judges speech, and the judge_acc figures of audio are left out)
    audio_judge_epochs: Annotated[int, Field(ge=0)] = 30
    # held-out voices: each voice's audio codes standardised by its own clips' statistics before
    # they are clustered (learn.voices.VoiceNormalizer); uses who speaks, never what is said
    voice_normalize: bool = False
    # then each held-out clip takes the recall most common among its nearest this share of the same
    # voice's clips (learn.voices.neighbour_vote; 0: off): a voice's clips of one word lie together
    voice_vote: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    # the noisy world: 20 % of the pairs mismatched and every part that learns from co-occurrence
    # relearned on them (both autoencoders again when they learn from their partner); the
    # cross_modal.mismatch20.* figures. False leaves it out (and those figures with it).
    mismatched_world: bool = True


class GenerationConfig(_Section):
    # ``hear``/``see`` re-activate one member of the evoked cluster, drawn among the members nearest
    # its centre (in the clustering's own space): this fraction of each cluster. A cluster's rim
    # holds its strays (a 4 filed with the 9s), and a stray decodes as the wrong digit. 1.0: any member.
    core_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    # decoded log-mels have their depth below the clip's peak multiplied by this before Griffin-Lim
    # (modalities.features.expand_contrast): a squared-error decoder fills the valleys of speech
    audio_contrast: Annotated[float, Field(ge=1, le=4)] = 1.0


class TrainingConfig(_Section):
    """How training runs, not what it makes: left out of :meth:`Config.fingerprint` and of every
    model's ``meta.json``, so finished models are reused whichever strategy trained them."""

    # default: TensorFlow's default strategy, one device (exactly as without this section).
    # mirrored: tf.distribute.MirroredStrategy, a copy of the model on each device; each global batch
    # (model.*.batch_size) is split between them and their gradients summed (learn.strategy).
    strategy: Literal["default", "mirrored"] = "default"
    # mirrored: the first N GPUs, or N logical CPU devices when no GPU is visible; None: every
    # visible GPU (or the one CPU)
    devices: PosInt | None = None

    @model_validator(mode="after")
    def _devices_need_mirrored(self) -> TrainingConfig:
        if self.strategy == "default" and self.devices is not None:
            raise ValueError(
                "training.devices is read only with training.strategy: mirrored (default trains on one "
                "device)"
            )
        return self


class Config(_Section):
    profile: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    seeds: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    model: ModelConfig
    data: DataConfig
    evaluation: EvaluationConfig
    paths: PathsConfig
    generation: GenerationConfig = GenerationConfig()
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        img = self.model.image_autoencoder.input_shape
        if list(img[:2]) != list(self.data.mnist.resize_to):
            raise ValueError(
                f"model.image_autoencoder.input_shape {img} must start with data.mnist.resize_to "
                f"{self.data.mnist.resize_to}"
            )
        fs = self.data.fsdd
        want = [fs.n_mels, fs.n_frames, 1]
        if list(self.model.audio_autoencoder.input_shape) != want:
            raise ValueError(
                f"model.audio_autoencoder.input_shape must be [n_mels, frames, 1] = {want} for "
                f"data.fsdd (n_mels={fs.n_mels}, duration={fs.duration}, hop_length={fs.hop_length})"
            )
        if fs.hop_length > fs.n_fft:
            raise ValueError("data.fsdd.hop_length must not exceed data.fsdd.n_fft")
        if not self.paths.allow_external:
            for key, value in self.paths.model_dump().items():
                if isinstance(value, str) and (Path(value).is_absolute() or ".." in Path(value).parts):
                    raise ValueError(
                        f"paths.{key}={value!r} leaves the project; set paths.allow_external: true "
                        "to allow it"
                    )
        return self

    @property
    def holdout_autoencoder(self) -> AudioAutoencoderConfig:
        """The audio autoencoder each speaker hold-out fold trains: the model's, for
        ``evaluation.speaker_holdout_epochs`` epochs when set."""
        epochs = self.evaluation.speaker_holdout_epochs
        audio = self.model.audio_autoencoder
        return audio if epochs is None else audio.model_copy(update={"epochs": epochs})

    # -- derived locations -------------------------------------------------------------------------
    # ``root`` defaults to the project's (core.paths): a kernel started in notebooks/ and a command
    # typed in a subfolder find the outputs a run from the root wrote. A relative ``root`` is taken
    # from the project root too; an absolute one (a test's private folder) as given.
    def run_dir(self, root: Path | str | None = None) -> Path:
        """``outputs/<profile>``: everything one run writes."""
        return from_root(Path(root or ".") / self.paths.output_dir / self.profile)

    def model_dir(self, root: Path | str | None = None) -> Path:
        return self.run_dir(root) / self.paths.model_dir

    def cluster_dir(self, root: Path | str | None = None) -> Path:
        return self.run_dir(root) / self.paths.cluster_dir

    def synthetic_dir(self, root: Path | str | None = None) -> Path:
        return self.run_dir(root) / self.paths.synthetic_dir

    def plot_dir(self, root: Path | str | None = None) -> Path:
        return self.run_dir(root) / self.paths.plot_dir

    def fingerprint(self, *sections: str) -> str:
        """A short hash of the named sections (all but ``training`` when none): artefacts record it so
        that a run never silently mixes models made under another configuration."""
        data = self.model_dump(mode="json")
        if sections:
            data = {s: _dig(data, s) for s in sections}
        else:
            data.pop("training")  # how training runs, not what it makes (TrainingConfig)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _dig(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def _format_error(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<top level>"
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = "unknown key (check its spelling; see the quick profile for every allowed key)"
        elif kind == "missing":
            msg = "missing key"
        else:
            msg = e["msg"]
            if "input" in e and kind != "value_error":
                msg += f" (got {e['input']!r})"
        lines.append(f"  {key}: {msg}")
    return f"invalid configuration in {source}:\n" + "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {source}: the top level must be a mapping")
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source)) from None


def profile_dict(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}")
    text = resources.files("mmga_helpers.core.profiles").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def load_config(source: str | Path = "quick") -> Config:
    """A profile name (``quick``, ``full``) or a path to a ``.json``, ``.yaml`` or ``.yml`` file; a
    relative path is looked for from the project root, then from the working directory
    (:func:`~mmga_helpers.core.paths.locate`)."""
    if str(source) in PROFILES:
        return config_from_dict(profile_dict(str(source)), f"profile {source}")
    path = locate(source)
    if not path.is_file():
        where = "" if Path(source).is_absolute() else f" (looked for from the project root {project_root()})"
        raise ConfigError(
            f"config file {source} not found{where}; give a path to a .json/.yaml file or a profile "
            f"({', '.join(PROFILES)})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read as UTF-8 text: {err}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"config file {path}: use a .json, .yaml or .yml file")
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"config file {path} is not valid {path.suffix[1:].upper()}: {err}") from None
    return config_from_dict(data, str(path))

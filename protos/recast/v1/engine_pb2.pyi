# ruff: noqa
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AssetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ASSET_KIND_UNSPECIFIED: _ClassVar[AssetKind]
    ASSET_KIND_VIDEO: _ClassVar[AssetKind]
    ASSET_KIND_IMAGE: _ClassVar[AssetKind]

class MaskMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MASK_METHOD_UNSPECIFIED: _ClassVar[MaskMethod]
    MASK_METHOD_THRESHOLD: _ClassVar[MaskMethod]
    MASK_METHOD_OTSU: _ClassVar[MaskMethod]

class JobKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_KIND_UNSPECIFIED: _ClassVar[JobKind]
    JOB_KIND_MASK: _ClassVar[JobKind]
    JOB_KIND_RENDER: _ClassVar[JobKind]

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_INTERRUPTED: _ClassVar[JobState]

class MaskVersionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MASK_VERSION_KIND_UNSPECIFIED: _ClassVar[MaskVersionKind]
    MASK_VERSION_KIND_AUTO: _ClassVar[MaskVersionKind]
    MASK_VERSION_KIND_PAINTED: _ClassVar[MaskVersionKind]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_MP4: _ClassVar[ExportFormat]
    EXPORT_FORMAT_PNG_SEQUENCE: _ClassVar[ExportFormat]
ASSET_KIND_UNSPECIFIED: AssetKind
ASSET_KIND_VIDEO: AssetKind
ASSET_KIND_IMAGE: AssetKind
MASK_METHOD_UNSPECIFIED: MaskMethod
MASK_METHOD_THRESHOLD: MaskMethod
MASK_METHOD_OTSU: MaskMethod
JOB_KIND_UNSPECIFIED: JobKind
JOB_KIND_MASK: JobKind
JOB_KIND_RENDER: JobKind
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_INTERRUPTED: JobState
MASK_VERSION_KIND_UNSPECIFIED: MaskVersionKind
MASK_VERSION_KIND_AUTO: MaskVersionKind
MASK_VERSION_KIND_PAINTED: MaskVersionKind
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_MP4: ExportFormat
EXPORT_FORMAT_PNG_SEQUENCE: ExportFormat

class GetEngineInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Limits(_message.Message):
    __slots__ = ("max_asset_bytes", "max_chunk_bytes", "max_clip_pixels", "max_clip_frames", "max_prompt_chars", "max_queued_jobs", "max_message_bytes")
    MAX_ASSET_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIP_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_CLIP_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_asset_bytes: int
    max_chunk_bytes: int
    max_clip_pixels: int
    max_clip_frames: int
    max_prompt_chars: int
    max_queued_jobs: int
    max_message_bytes: int
    def __init__(self, max_asset_bytes: _Optional[int] = ..., max_chunk_bytes: _Optional[int] = ..., max_clip_pixels: _Optional[int] = ..., max_clip_frames: _Optional[int] = ..., max_prompt_chars: _Optional[int] = ..., max_queued_jobs: _Optional[int] = ..., max_message_bytes: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "native_size", "active")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NATIVE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    native_size: int
    active: bool
    def __init__(self, name: _Optional[str] = ..., native_size: _Optional[int] = ..., active: _Optional[bool] = ...) -> None: ...

class EngineInfo(_message.Message):
    __slots__ = ("version", "api_version", "device", "models", "limits", "pipeline_ready", "draining", "queued_jobs", "pid", "instance_id", "model_loaded", "keep_alive_seconds", "idle_exit_seconds")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_READY_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    QUEUED_JOBS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_LOADED_FIELD_NUMBER: _ClassVar[int]
    KEEP_ALIVE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IDLE_EXIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    version: str
    api_version: str
    device: str
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    limits: Limits
    pipeline_ready: bool
    draining: bool
    queued_jobs: int
    pid: int
    instance_id: str
    model_loaded: bool
    keep_alive_seconds: int
    idle_exit_seconds: int
    def __init__(self, version: _Optional[str] = ..., api_version: _Optional[str] = ..., device: _Optional[str] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., pipeline_ready: _Optional[bool] = ..., draining: _Optional[bool] = ..., queued_jobs: _Optional[int] = ..., pid: _Optional[int] = ..., instance_id: _Optional[str] = ..., model_loaded: _Optional[bool] = ..., keep_alive_seconds: _Optional[int] = ..., idle_exit_seconds: _Optional[int] = ...) -> None: ...

class Asset(_message.Message):
    __slots__ = ("asset_id", "kind", "filename", "size_bytes", "sha256", "width", "height", "frame_count", "fps", "source_path")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    kind: AssetKind
    filename: str
    size_bytes: int
    sha256: str
    width: int
    height: int
    frame_count: int
    fps: float
    source_path: str
    def __init__(self, asset_id: _Optional[str] = ..., kind: _Optional[_Union[AssetKind, str]] = ..., filename: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., frame_count: _Optional[int] = ..., fps: _Optional[float] = ..., source_path: _Optional[str] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("filename", "size_bytes", "sha256")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    filename: str
    size_bytes: int
    sha256: str
    def __init__(self, filename: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class UploadAssetRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ImportAssetRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class GetAssetRequest(_message.Message):
    __slots__ = ("asset_id",)
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    def __init__(self, asset_id: _Optional[str] = ...) -> None: ...

class Clip(_message.Message):
    __slots__ = ("clip_id", "asset_id", "start_frame", "end_frame", "frame_count", "width", "height", "fps", "created_unix_ms")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    END_FRAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    asset_id: str
    start_frame: int
    end_frame: int
    frame_count: int
    width: int
    height: int
    fps: float
    created_unix_ms: int
    def __init__(self, clip_id: _Optional[str] = ..., asset_id: _Optional[str] = ..., start_frame: _Optional[int] = ..., end_frame: _Optional[int] = ..., frame_count: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class CreateClipRequest(_message.Message):
    __slots__ = ("asset_id", "start_frame", "end_frame")
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    START_FRAME_FIELD_NUMBER: _ClassVar[int]
    END_FRAME_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    start_frame: int
    end_frame: int
    def __init__(self, asset_id: _Optional[str] = ..., start_frame: _Optional[int] = ..., end_frame: _Optional[int] = ...) -> None: ...

class GetClipRequest(_message.Message):
    __slots__ = ("clip_id",)
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    def __init__(self, clip_id: _Optional[str] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("width", "height", "encoding", "data")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENCODING_UNSPECIFIED: _ClassVar[Image.Encoding]
        ENCODING_PNG: _ClassVar[Image.Encoding]
        ENCODING_JPEG: _ClassVar[Image.Encoding]
    ENCODING_UNSPECIFIED: Image.Encoding
    ENCODING_PNG: Image.Encoding
    ENCODING_JPEG: Image.Encoding
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    encoding: Image.Encoding
    data: bytes
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., encoding: _Optional[_Union[Image.Encoding, str]] = ..., data: _Optional[bytes] = ...) -> None: ...

class GetClipFramesRequest(_message.Message):
    __slots__ = ("clip_id", "start", "end", "max_size")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    start: int
    end: int
    max_size: int
    def __init__(self, clip_id: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., max_size: _Optional[int] = ...) -> None: ...

class FrameImage(_message.Message):
    __slots__ = ("frame_index", "image")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    image: Image
    def __init__(self, frame_index: _Optional[int] = ..., image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class EditSettings(_message.Message):
    __slots__ = ("steps", "seed", "guidance_scale", "source_negative", "noise_level", "tune_steps", "tune_lr", "inversion_refine", "mask_threshold", "mask_method", "mask_dilate", "mask_refine", "mask_text_only", "feather", "framing", "renoise", "layered", "color_match", "latent_correction", "correction_weight_prev", "correction_weight_self", "correction_weight_next", "correction_block", "temporal", "anchor_first_frame", "window", "overlap", "preview_every", "cache", "mask_preset", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    NOISE_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TUNE_STEPS_FIELD_NUMBER: _ClassVar[int]
    TUNE_LR_FIELD_NUMBER: _ClassVar[int]
    INVERSION_REFINE_FIELD_NUMBER: _ClassVar[int]
    MASK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MASK_METHOD_FIELD_NUMBER: _ClassVar[int]
    MASK_DILATE_FIELD_NUMBER: _ClassVar[int]
    MASK_REFINE_FIELD_NUMBER: _ClassVar[int]
    MASK_TEXT_ONLY_FIELD_NUMBER: _ClassVar[int]
    FEATHER_FIELD_NUMBER: _ClassVar[int]
    FRAMING_FIELD_NUMBER: _ClassVar[int]
    RENOISE_FIELD_NUMBER: _ClassVar[int]
    LAYERED_FIELD_NUMBER: _ClassVar[int]
    COLOR_MATCH_FIELD_NUMBER: _ClassVar[int]
    LATENT_CORRECTION_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_WEIGHT_PREV_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_WEIGHT_SELF_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_WEIGHT_NEXT_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_BLOCK_FIELD_NUMBER: _ClassVar[int]
    TEMPORAL_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIRST_FRAME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_EVERY_FIELD_NUMBER: _ClassVar[int]
    CACHE_FIELD_NUMBER: _ClassVar[int]
    MASK_PRESET_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    steps: int
    seed: int
    guidance_scale: float
    source_negative: bool
    noise_level: int
    tune_steps: int
    tune_lr: float
    inversion_refine: int
    mask_threshold: float
    mask_method: MaskMethod
    mask_dilate: float
    mask_refine: bool
    mask_text_only: bool
    feather: float
    framing: str
    renoise: float
    layered: bool
    color_match: float
    latent_correction: bool
    correction_weight_prev: float
    correction_weight_self: float
    correction_weight_next: float
    correction_block: int
    temporal: bool
    anchor_first_frame: bool
    window: int
    overlap: int
    preview_every: int
    cache: bool
    mask_preset: str
    extra: _containers.ScalarMap[str, str]
    def __init__(self, steps: _Optional[int] = ..., seed: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., source_negative: _Optional[bool] = ..., noise_level: _Optional[int] = ..., tune_steps: _Optional[int] = ..., tune_lr: _Optional[float] = ..., inversion_refine: _Optional[int] = ..., mask_threshold: _Optional[float] = ..., mask_method: _Optional[_Union[MaskMethod, str]] = ..., mask_dilate: _Optional[float] = ..., mask_refine: _Optional[bool] = ..., mask_text_only: _Optional[bool] = ..., feather: _Optional[float] = ..., framing: _Optional[str] = ..., renoise: _Optional[float] = ..., layered: _Optional[bool] = ..., color_match: _Optional[float] = ..., latent_correction: _Optional[bool] = ..., correction_weight_prev: _Optional[float] = ..., correction_weight_self: _Optional[float] = ..., correction_weight_next: _Optional[float] = ..., correction_block: _Optional[int] = ..., temporal: _Optional[bool] = ..., anchor_first_frame: _Optional[bool] = ..., window: _Optional[int] = ..., overlap: _Optional[int] = ..., preview_every: _Optional[int] = ..., cache: _Optional[bool] = ..., mask_preset: _Optional[str] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateMaskJobRequest(_message.Message):
    __slots__ = ("clip_id", "source_prompt", "target_prompt", "target_asset_id", "settings")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    TARGET_PROMPT_FIELD_NUMBER: _ClassVar[int]
    TARGET_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    source_prompt: str
    target_prompt: str
    target_asset_id: str
    settings: EditSettings
    def __init__(self, clip_id: _Optional[str] = ..., source_prompt: _Optional[str] = ..., target_prompt: _Optional[str] = ..., target_asset_id: _Optional[str] = ..., settings: _Optional[_Union[EditSettings, _Mapping]] = ...) -> None: ...

class CreateRenderJobRequest(_message.Message):
    __slots__ = ("clip_id", "source_prompt", "target_prompt", "target_asset_id", "settings", "mask_version", "use_latest_masks")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    TARGET_PROMPT_FIELD_NUMBER: _ClassVar[int]
    TARGET_ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    MASK_VERSION_FIELD_NUMBER: _ClassVar[int]
    USE_LATEST_MASKS_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    source_prompt: str
    target_prompt: str
    target_asset_id: str
    settings: EditSettings
    mask_version: int
    use_latest_masks: bool
    def __init__(self, clip_id: _Optional[str] = ..., source_prompt: _Optional[str] = ..., target_prompt: _Optional[str] = ..., target_asset_id: _Optional[str] = ..., settings: _Optional[_Union[EditSettings, _Mapping]] = ..., mask_version: _Optional[int] = ..., use_latest_masks: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job_id", "kind", "state", "clip_id", "queue_position", "created_unix_ms", "started_unix_ms", "ended_unix_ms", "error", "last_seq", "mask_version", "result_frames", "last_progress", "asset_id", "mask_request", "render_request")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    MASK_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FRAMES_FIELD_NUMBER: _ClassVar[int]
    LAST_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    MASK_REQUEST_FIELD_NUMBER: _ClassVar[int]
    RENDER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    kind: JobKind
    state: JobState
    clip_id: str
    queue_position: int
    created_unix_ms: int
    started_unix_ms: int
    ended_unix_ms: int
    error: str
    last_seq: int
    mask_version: int
    result_frames: int
    last_progress: ProgressEvent
    asset_id: str
    mask_request: CreateMaskJobRequest
    render_request: CreateRenderJobRequest
    def __init__(self, job_id: _Optional[str] = ..., kind: _Optional[_Union[JobKind, str]] = ..., state: _Optional[_Union[JobState, str]] = ..., clip_id: _Optional[str] = ..., queue_position: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., started_unix_ms: _Optional[int] = ..., ended_unix_ms: _Optional[int] = ..., error: _Optional[str] = ..., last_seq: _Optional[int] = ..., mask_version: _Optional[int] = ..., result_frames: _Optional[int] = ..., last_progress: _Optional[_Union[ProgressEvent, _Mapping]] = ..., asset_id: _Optional[str] = ..., mask_request: _Optional[_Union[CreateMaskJobRequest, _Mapping]] = ..., render_request: _Optional[_Union[CreateRenderJobRequest, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("clip_id", "states", "limit", "asset_id")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    states: _containers.RepeatedScalarFieldContainer[JobState]
    limit: int
    asset_id: str
    def __init__(self, clip_id: _Optional[str] = ..., states: _Optional[_Iterable[_Union[JobState, str]]] = ..., limit: _Optional[int] = ..., asset_id: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("job_id", "from_seq", "skip_previews", "skip_result_images")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    SKIP_PREVIEWS_FIELD_NUMBER: _ClassVar[int]
    SKIP_RESULT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    from_seq: int
    skip_previews: bool
    skip_result_images: bool
    def __init__(self, job_id: _Optional[str] = ..., from_seq: _Optional[int] = ..., skip_previews: _Optional[bool] = ..., skip_result_images: _Optional[bool] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ResumeJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class QueuedEvent(_message.Message):
    __slots__ = ("position",)
    POSITION_FIELD_NUMBER: _ClassVar[int]
    position: int
    def __init__(self, position: _Optional[int] = ...) -> None: ...

class StartedEvent(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ProgressEvent(_message.Message):
    __slots__ = ("stage", "step", "total", "eta_seconds")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    step: int
    total: int
    eta_seconds: float
    def __init__(self, stage: _Optional[str] = ..., step: _Optional[int] = ..., total: _Optional[int] = ..., eta_seconds: _Optional[float] = ...) -> None: ...

class PreviewEvent(_message.Message):
    __slots__ = ("frame_index", "image")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    image: Image
    def __init__(self, frame_index: _Optional[int] = ..., image: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class ProvisionalMaskEvent(_message.Message):
    __slots__ = ("frame_index", "mask", "provisional")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    PROVISIONAL_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    mask: Image
    provisional: bool
    def __init__(self, frame_index: _Optional[int] = ..., mask: _Optional[_Union[Image, _Mapping]] = ..., provisional: _Optional[bool] = ...) -> None: ...

class ResultFrameEvent(_message.Message):
    __slots__ = ("frame_index", "image", "mask")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    image: Image
    mask: Image
    def __init__(self, frame_index: _Optional[int] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., mask: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class FinishedEvent(_message.Message):
    __slots__ = ("mask_version", "frame_count", "wall_seconds", "timings")
    class TimingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MASK_VERSION_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WALL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    mask_version: int
    frame_count: int
    wall_seconds: float
    timings: _containers.ScalarMap[str, float]
    def __init__(self, mask_version: _Optional[int] = ..., frame_count: _Optional[int] = ..., wall_seconds: _Optional[float] = ..., timings: _Optional[_Mapping[str, float]] = ...) -> None: ...

class FailedEvent(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class CancelledEvent(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InterruptedEvent(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("seq", "job_id", "time_unix_ms", "queued", "started", "progress", "preview", "result_frame", "finished", "failed", "cancelled", "interrupted", "provisional_mask")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    RESULT_FRAME_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    PROVISIONAL_MASK_FIELD_NUMBER: _ClassVar[int]
    seq: int
    job_id: str
    time_unix_ms: int
    queued: QueuedEvent
    started: StartedEvent
    progress: ProgressEvent
    preview: PreviewEvent
    result_frame: ResultFrameEvent
    finished: FinishedEvent
    failed: FailedEvent
    cancelled: CancelledEvent
    interrupted: InterruptedEvent
    provisional_mask: ProvisionalMaskEvent
    def __init__(self, seq: _Optional[int] = ..., job_id: _Optional[str] = ..., time_unix_ms: _Optional[int] = ..., queued: _Optional[_Union[QueuedEvent, _Mapping]] = ..., started: _Optional[_Union[StartedEvent, _Mapping]] = ..., progress: _Optional[_Union[ProgressEvent, _Mapping]] = ..., preview: _Optional[_Union[PreviewEvent, _Mapping]] = ..., result_frame: _Optional[_Union[ResultFrameEvent, _Mapping]] = ..., finished: _Optional[_Union[FinishedEvent, _Mapping]] = ..., failed: _Optional[_Union[FailedEvent, _Mapping]] = ..., cancelled: _Optional[_Union[CancelledEvent, _Mapping]] = ..., interrupted: _Optional[_Union[InterruptedEvent, _Mapping]] = ..., provisional_mask: _Optional[_Union[ProvisionalMaskEvent, _Mapping]] = ...) -> None: ...

class GetResultFramesRequest(_message.Message):
    __slots__ = ("job_id", "start", "end")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    start: int
    end: int
    def __init__(self, job_id: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class ResultFrame(_message.Message):
    __slots__ = ("frame_index", "image", "mask")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    image: Image
    mask: Image
    def __init__(self, frame_index: _Optional[int] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., mask: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class MaskVersion(_message.Message):
    __slots__ = ("clip_id", "version", "kind", "base_version", "job_id", "created_unix_ms", "frame_count", "note")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    version: int
    kind: MaskVersionKind
    base_version: int
    job_id: str
    created_unix_ms: int
    frame_count: int
    note: str
    def __init__(self, clip_id: _Optional[str] = ..., version: _Optional[int] = ..., kind: _Optional[_Union[MaskVersionKind, str]] = ..., base_version: _Optional[int] = ..., job_id: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., frame_count: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class ListMaskVersionsRequest(_message.Message):
    __slots__ = ("clip_id",)
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    def __init__(self, clip_id: _Optional[str] = ...) -> None: ...

class ListMaskVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[MaskVersion]
    def __init__(self, versions: _Optional[_Iterable[_Union[MaskVersion, _Mapping]]] = ...) -> None: ...

class GetMasksRequest(_message.Message):
    __slots__ = ("clip_id", "version", "start", "end")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    version: int
    start: int
    end: int
    def __init__(self, clip_id: _Optional[str] = ..., version: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class MaskFrame(_message.Message):
    __slots__ = ("frame_index", "mask")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    mask: Image
    def __init__(self, frame_index: _Optional[int] = ..., mask: _Optional[_Union[Image, _Mapping]] = ...) -> None: ...

class SaveMaskVersionRequest(_message.Message):
    __slots__ = ("clip_id", "base_version", "frames", "note")
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    base_version: int
    frames: _containers.RepeatedCompositeFieldContainer[MaskFrame]
    note: str
    def __init__(self, clip_id: _Optional[str] = ..., base_version: _Optional[int] = ..., frames: _Optional[_Iterable[_Union[MaskFrame, _Mapping]]] = ..., note: _Optional[str] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("job_id", "format", "path", "fps")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    format: ExportFormat
    path: str
    fps: float
    def __init__(self, job_id: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., path: _Optional[str] = ..., fps: _Optional[float] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ("path", "frame_count", "size_bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    frame_count: int
    size_bytes: int
    def __init__(self, path: _Optional[str] = ..., frame_count: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class DeleteClipRequest(_message.Message):
    __slots__ = ("clip_id",)
    CLIP_ID_FIELD_NUMBER: _ClassVar[int]
    clip_id: str
    def __init__(self, clip_id: _Optional[str] = ...) -> None: ...

class DeleteAssetRequest(_message.Message):
    __slots__ = ("asset_id",)
    ASSET_ID_FIELD_NUMBER: _ClassVar[int]
    asset_id: str
    def __init__(self, asset_id: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("blobs_deleted", "bytes_freed")
    BLOBS_DELETED_FIELD_NUMBER: _ClassVar[int]
    BYTES_FREED_FIELD_NUMBER: _ClassVar[int]
    blobs_deleted: int
    bytes_freed: int
    def __init__(self, blobs_deleted: _Optional[int] = ..., bytes_freed: _Optional[int] = ...) -> None: ...

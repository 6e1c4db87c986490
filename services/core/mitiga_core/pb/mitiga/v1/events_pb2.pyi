from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DriftLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRIFT_LEVEL_UNSPECIFIED: _ClassVar[DriftLevel]
    DRIFT_LEVEL_NONE: _ClassVar[DriftLevel]
    DRIFT_LEVEL_WARNING: _ClassVar[DriftLevel]
    DRIFT_LEVEL_CRITICAL: _ClassVar[DriftLevel]

class DriftType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRIFT_TYPE_UNSPECIFIED: _ClassVar[DriftType]
    DRIFT_TYPE_DATA: _ClassVar[DriftType]
    DRIFT_TYPE_PREDICTION: _ClassVar[DriftType]
    DRIFT_TYPE_CONCEPT: _ClassVar[DriftType]
    DRIFT_TYPE_ESTIMATED: _ClassVar[DriftType]
DRIFT_LEVEL_UNSPECIFIED: DriftLevel
DRIFT_LEVEL_NONE: DriftLevel
DRIFT_LEVEL_WARNING: DriftLevel
DRIFT_LEVEL_CRITICAL: DriftLevel
DRIFT_TYPE_UNSPECIFIED: DriftType
DRIFT_TYPE_DATA: DriftType
DRIFT_TYPE_PREDICTION: DriftType
DRIFT_TYPE_CONCEPT: DriftType
DRIFT_TYPE_ESTIMATED: DriftType

class Matrix(_message.Message):
    __slots__ = ("shape", "data")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., data: _Optional[_Iterable[float]] = ...) -> None: ...

class InferenceEvent(_message.Message):
    __slots__ = ("event_id", "request_id", "model_name", "model_version", "time", "feature_names", "inputs", "outputs", "output_names", "data_time", "shadow", "caller")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    FEATURE_NAMES_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAMES_FIELD_NUMBER: _ClassVar[int]
    DATA_TIME_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    request_id: str
    model_name: str
    model_version: str
    time: _timestamp_pb2.Timestamp
    feature_names: _containers.RepeatedScalarFieldContainer[str]
    inputs: Matrix
    outputs: Matrix
    output_names: _containers.RepeatedScalarFieldContainer[str]
    data_time: _timestamp_pb2.Timestamp
    shadow: bool
    caller: str
    def __init__(self, event_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., feature_names: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Union[Matrix, _Mapping]] = ..., outputs: _Optional[_Union[Matrix, _Mapping]] = ..., output_names: _Optional[_Iterable[str]] = ..., data_time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., shadow: bool = ..., caller: _Optional[str] = ...) -> None: ...

class InferenceEventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[InferenceEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[InferenceEvent, _Mapping]]] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("request_id", "ground_truth")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    ground_truth: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, request_id: _Optional[str] = ..., ground_truth: _Optional[_Iterable[float]] = ...) -> None: ...

class FeedbackEvent(_message.Message):
    __slots__ = ("event_id", "model_name", "time", "items", "source")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    model_name: str
    time: _timestamp_pb2.Timestamp
    items: _containers.RepeatedCompositeFieldContainer[Feedback]
    source: str
    def __init__(self, event_id: _Optional[str] = ..., model_name: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., items: _Optional[_Iterable[_Union[Feedback, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class FeatureDrift(_message.Message):
    __slots__ = ("feature", "p_value", "statistic", "wasserstein", "jensen_shannon", "psi", "drifted")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    P_VALUE_FIELD_NUMBER: _ClassVar[int]
    STATISTIC_FIELD_NUMBER: _ClassVar[int]
    WASSERSTEIN_FIELD_NUMBER: _ClassVar[int]
    JENSEN_SHANNON_FIELD_NUMBER: _ClassVar[int]
    PSI_FIELD_NUMBER: _ClassVar[int]
    DRIFTED_FIELD_NUMBER: _ClassVar[int]
    feature: str
    p_value: float
    statistic: float
    wasserstein: float
    jensen_shannon: float
    psi: float
    drifted: bool
    def __init__(self, feature: _Optional[str] = ..., p_value: _Optional[float] = ..., statistic: _Optional[float] = ..., wasserstein: _Optional[float] = ..., jensen_shannon: _Optional[float] = ..., psi: _Optional[float] = ..., drifted: bool = ...) -> None: ...

class DriftEvent(_message.Message):
    __slots__ = ("event_id", "episode_id", "model_name", "model_version", "window_start", "window_end", "window_size", "level", "drift_types", "share_drifted", "top_features", "metrics", "time", "signals", "decided_by", "deciding", "units")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    DRIFT_TYPES_FIELD_NUMBER: _ClassVar[int]
    SHARE_DRIFTED_FIELD_NUMBER: _ClassVar[int]
    TOP_FEATURES_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDING_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    episode_id: str
    model_name: str
    model_version: str
    window_start: _timestamp_pb2.Timestamp
    window_end: _timestamp_pb2.Timestamp
    window_size: int
    level: DriftLevel
    drift_types: _containers.RepeatedScalarFieldContainer[DriftType]
    share_drifted: float
    top_features: _containers.RepeatedCompositeFieldContainer[FeatureDrift]
    metrics: _containers.ScalarMap[str, float]
    time: _timestamp_pb2.Timestamp
    signals: _containers.RepeatedScalarFieldContainer[str]
    decided_by: str
    deciding: _containers.RepeatedCompositeFieldContainer[SignalReading]
    units: str
    def __init__(self, event_id: _Optional[str] = ..., episode_id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., window_start: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., window_end: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., window_size: _Optional[int] = ..., level: _Optional[_Union[DriftLevel, str]] = ..., drift_types: _Optional[_Iterable[_Union[DriftType, str]]] = ..., share_drifted: _Optional[float] = ..., top_features: _Optional[_Iterable[_Union[FeatureDrift, _Mapping]]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., signals: _Optional[_Iterable[str]] = ..., decided_by: _Optional[str] = ..., deciding: _Optional[_Iterable[_Union[SignalReading, _Mapping]]] = ..., units: _Optional[str] = ...) -> None: ...

class SignalReading(_message.Message):
    __slots__ = ("signal", "value", "threshold", "direction")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    signal: str
    value: float
    threshold: float
    direction: str
    def __init__(self, signal: _Optional[str] = ..., value: _Optional[float] = ..., threshold: _Optional[float] = ..., direction: _Optional[str] = ...) -> None: ...

class RetrainRequest(_message.Message):
    __slots__ = ("request_id", "model_name", "base_version", "episode_id", "trigger", "strategy", "mode", "time", "options")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    EPISODE_ID_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model_name: str
    base_version: str
    episode_id: str
    trigger: str
    strategy: str
    mode: str
    time: _timestamp_pb2.Timestamp
    options: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., base_version: _Optional[str] = ..., episode_id: _Optional[str] = ..., trigger: _Optional[str] = ..., strategy: _Optional[str] = ..., mode: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., options: _Optional[_Mapping[str, str]] = ...) -> None: ...

class RetrainProgress(_message.Message):
    __slots__ = ("event_id", "request_id", "model_name", "status", "epoch", "epochs", "loss", "elapsed_seconds", "eta_seconds", "version", "reason", "time")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    request_id: str
    model_name: str
    status: str
    epoch: int
    epochs: int
    loss: float
    elapsed_seconds: float
    eta_seconds: float
    version: str
    reason: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, event_id: _Optional[str] = ..., request_id: _Optional[str] = ..., model_name: _Optional[str] = ..., status: _Optional[str] = ..., epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., loss: _Optional[float] = ..., elapsed_seconds: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., version: _Optional[str] = ..., reason: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ModelRollout(_message.Message):
    __slots__ = ("event_id", "model_name", "version", "previous_version", "reason", "request_id", "time", "stage", "canary_percent")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    CANARY_PERCENT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    model_name: str
    version: str
    previous_version: str
    reason: str
    request_id: str
    time: _timestamp_pb2.Timestamp
    stage: str
    canary_percent: float
    def __init__(self, event_id: _Optional[str] = ..., model_name: _Optional[str] = ..., version: _Optional[str] = ..., previous_version: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ..., time: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., stage: _Optional[str] = ..., canary_percent: _Optional[float] = ...) -> None: ...

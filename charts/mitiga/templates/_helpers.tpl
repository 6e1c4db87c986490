{{/* Names and labels shared by every template. */}}

{{- define "mitiga.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mitiga.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The standard app.kubernetes.io labels; pass (dict "ctx" $ "component" "inference"). */}}
{{- define "mitiga.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "mitiga.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: mitiga
{{- end -}}

{{- define "mitiga.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mitiga.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mitiga.componentName" -}}
{{- printf "%s-%s" (include "mitiga.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mitiga.image" -}}
{{- $override := index .ctx.Values.image .component | default "" -}}
{{- $override | default (printf "%s/mitiga-%s:%s" .ctx.Values.image.repository .component (default .ctx.Chart.AppVersion .ctx.Values.image.tag)) -}}
{{- end -}}

{{- define "mitiga.adminSecret" -}}
{{- default (printf "%s-admin" (include "mitiga.fullname" .)) .Values.adminToken.existingSecret -}}
{{- end -}}

{{- define "mitiga.modelClaim" -}}
{{- default (printf "%s-models" (include "mitiga.fullname" .)) .Values.modelStore.existingClaim -}}
{{- end -}}

{{/* Environment of a component's container: the common ConfigMap, its own, the admin token (inference and detector:
the retrainer needs none), and (inference, when required) the feedback token.
Pass (dict "ctx" $ "component" "inference"). */}}
{{- define "mitiga.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "mitiga.fullname" .ctx }}-common
  - configMapRef:
      name: {{ include "mitiga.componentName" . }}
env:
  {{- if eq .component "retrainer" }}
  # the retrain request the detector made (an annotation of the Job's pod): the pod's spec stays the chart's to the
  # letter, which the admission policy checks
  - name: MITIGA_RETRAIN_REQUEST
    valueFrom:
      fieldRef:
        fieldPath: metadata.annotations['mitiga.io/retrain-request']
  {{- end }}
  {{- if ne .component "retrainer" }}
  - name: MITIGA_ADMIN_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "mitiga.adminSecret" .ctx }}
        key: admin-token
  {{- end }}
  {{- with .ctx.Values.config.redisUrlSecret }}
  {{- if .name }}
  - name: MITIGA_REDIS_URL
    valueFrom:
      secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}
  {{- end }}
  {{- end }}
  {{- with .ctx.Values.config.kafkaSasl.passwordSecret }}
  {{- if .name }}
  - name: MITIGA_KAFKA_SASL_PASSWORD
    valueFrom:
      secretKeyRef: {name: {{ .name | quote }}, key: {{ .key | quote }}}
  {{- end }}
  {{- end }}
  {{- if and (eq .component "inference") .ctx.Values.feedbackToken.required }}
  - name: MITIGA_FEEDBACK_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "mitiga.adminSecret" .ctx }}
        key: feedback-token
  {{- end }}
{{- end -}}

{{/* Volumes: the model store and a writable /tmp (the root filesystem is read-only). */}}
{{- define "mitiga.volumes" -}}
- name: models
  persistentVolumeClaim:
    claimName: {{ include "mitiga.modelClaim" . }}
- name: tmp
  emptyDir: {}
{{- with .Values.config.kafkaTls.caSecret }}{{ if .name }}
- name: kafka-ca
  secret:
    secretName: {{ .name | quote }}
    items: [{key: {{ .key | quote }}, path: ca.crt}]
{{- end }}{{ end }}
{{- end -}}

{{- define "mitiga.volumeMounts" -}}
- name: models
  mountPath: {{ .Values.modelStore.mountPath }}
- name: tmp
  mountPath: /tmp
{{- if .Values.config.kafkaTls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/mitiga/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* The pinned versions as the inference service reads them: {"lstm": "3"}. */}}
{{- define "mitiga.modelVersions" -}}
{{- $versions := dict -}}
{{- range $name, $model := .Values.models -}}
{{- if $model -}}  {{/* null: a default model removed (models.lstm=null) */}}
{{- $_ := set $versions $name (toString $model.version) -}}
{{- end -}}
{{- end -}}
{{- toJson $versions -}}
{{- end -}}

{{/* NetworkPolicy egress rules: DNS, Kafka and Redis; and the API server. */}}
{{- define "mitiga.egressDeps" -}}
# DNS
- ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
# Kafka and Redis
- to: {{- toYaml .Values.networkPolicy.kafka.peers | nindent 4 }}
  ports: [{protocol: TCP, port: {{ .Values.networkPolicy.kafka.port }}}]
- to: {{- toYaml .Values.networkPolicy.redis.peers | nindent 4 }}
  ports: [{protocol: TCP, port: {{ .Values.networkPolicy.redis.port }}}]
{{- end -}}
{{- define "mitiga.egressApiServer" -}}
{{- $cidrs := .Values.networkPolicy.apiServer.cidrs }}
{{- if not $cidrs }}
{{- /* the addresses found at install, kept in the detector's own policy: an upgrade (the retrainer's, which may not
read the default namespace) keeps them */}}
{{- with lookup "networking.k8s.io/v1" "NetworkPolicy" .Release.Namespace (include "mitiga.componentName" (dict "ctx" . "component" "detector")) }}
{{- range .spec.egress }}{{ range .to }}{{ if .ipBlock }}{{ $cidrs = append $cidrs .ipBlock.cidr }}{{ end }}{{ end }}{{ end }}
{{- end }}
{{- end }}
{{- if not $cidrs }}
{{- /* the API server's real addresses: the kubernetes Service's cluster IP and its endpoints (a CNI may check the
address before or after the Service's translation); none offline (helm template): then anywhere */}}
{{- $found := list }}
{{- with lookup "v1" "Service" "default" "kubernetes" }}{{ $found = append $found (printf "%s/32" .spec.clusterIP) }}{{ end }}
{{- range (lookup "discovery.k8s.io/v1" "EndpointSlice" "default" "").items }}
{{- if eq (index (.metadata.labels | default dict) "kubernetes.io/service-name" | default "") "kubernetes" }}
{{- range .endpoints }}{{ range .addresses }}{{ $found = append $found (printf "%s/32" .) }}{{ end }}{{ end }}
{{- end }}
{{- end }}
{{- $cidrs = $found | default (list "0.0.0.0/0") }}
{{- end }}
# the Kubernetes API server, by its own addresses
- to:
    {{- range $cidrs }}
    - ipBlock: {cidr: {{ . | quote }}}
    {{- end }}
  ports:
    {{- range .Values.networkPolicy.apiServer.ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end -}}

{{/* The retrainer exits 2 when a run cannot succeed (bad options or data, a failed rollout): retrying it would
only repeat the failure, so the Job fails at once. A pod evicted or preempted does not count against backoffLimit. */}}
{{- define "mitiga.retrainerFailurePolicy" -}}
rules:
  - action: FailJob
    onExitCodes:
      containerName: retrainer
      operator: In
      values: [2]
  - action: Ignore
    onPodConditions:
      - type: DisruptionTarget
        status: "True"  {{- /* required before Kubernetes 1.34 (make matrix), defaulted since */}}
{{- end -}}

{{/* "true" when the tokens are given as values (and so rendered into the release), "" when the chart's hook
creates them inside the cluster. */}}
{{- define "mitiga.tokensRendered" -}}
{{- if and (not .Values.adminToken.existingSecret) (or .Values.adminToken.value .Values.feedbackToken.value) }}true{{ end -}}
{{- end -}}

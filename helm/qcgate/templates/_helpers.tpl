{{/*
Names and labels. Every qcgate pod carries app.kubernetes.io/name=qcgate, the release as instance and
its process kind as component (receiver, api, sweeper, worker-cpu, worker-gpu, migrate).
*/}}
{{- define "qcgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains "qcgate" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-qcgate" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qcgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: qcgate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qcgate
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "receiver") */}}
{{- define "qcgate.selectorLabels" -}}
app.kubernetes.io/name: qcgate
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "qcgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The GPU image: its own repository and tag, by default <repository>:<tag>-gpu (the Dockerfile's gpu target). */}}
{{- define "qcgate.gpuImage" -}}
{{- $gpu := .Values.workers.gpu.image -}}
{{- $repository := $gpu.repository | default .Values.image.repository -}}
{{- $tag := $gpu.tag | default (printf "%s-gpu" (.Values.image.tag | default .Chart.AppVersion)) -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}

{{/* The chart's own Secret (database URL, broker URL, webhooks) when any of them is given as a value. */}}
{{- define "qcgate.credentialsSecret" -}}
{{- printf "%s-credentials" (include "qcgate.fullname" .) -}}
{{- end -}}

{{- define "qcgate.ownsCredentials" -}}
{{- $database := and .Values.database.url (not .Values.database.existingSecret) (not .Values.postgresql.enabled) -}}
{{- $broker := and .Values.broker.url (not .Values.broker.existingSecret) (not .Values.redis.enabled) -}}
{{- $webhooks := and .Values.webhooks.definitions (not .Values.webhooks.existingSecret) -}}
{{- if or $database $broker $webhooks -}}
true
{{- end -}}
{{- end -}}

{{- define "qcgate.postgresqlSecret" -}}
{{- .Values.postgresql.auth.existingSecret | default (printf "%s-postgresql" (include "qcgate.fullname" .)) -}}
{{- end -}}

{{- define "qcgate.redisSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis" (include "qcgate.fullname" .)) -}}
{{- end -}}

{{/*
The database URL as env entries: the bundled PostgreSQL (its password from its Secret, expanded by
Kubernetes into the URL: it must be URL-safe), an existing Secret, or the chart's Secret. `secret` names
the Secret that holds a chart-managed URL (the migrate hook passes its own, made before the release's).
*/}}
{{- define "qcgate.databaseEnv" -}}
{{- $root := .root -}}
{{- if $root.Values.postgresql.enabled -}}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "qcgate.postgresqlSecret" $root }}
      key: {{ $root.Values.postgresql.auth.existingSecretKey }}
- name: QCGATE_DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(POSTGRES_PASSWORD)@%s-postgresql:5432/%s" $root.Values.postgresql.auth.username (include "qcgate.fullname" $root) $root.Values.postgresql.auth.database | quote }}
{{- else if $root.Values.database.existingSecret -}}
- name: QCGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.database.existingSecret }}
      key: {{ $root.Values.database.existingSecretKey }}
{{- else -}}
{{- $_ := required "database.url or database.existingSecret (or postgresql.enabled): the PostgreSQL that every pod shares" $root.Values.database.url -}}
- name: QCGATE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: database-url
{{- end -}}
{{- end -}}

{{- define "qcgate.brokerEnv" -}}
{{- if .Values.redis.enabled -}}
{{- if .Values.redis.auth.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "qcgate.redisSecret" . }}
      key: {{ .Values.redis.auth.existingSecretKey }}
- name: QCGATE_BROKER_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s-redis:6379/0" (include "qcgate.fullname" .) | quote }}
{{- else }}
- name: QCGATE_BROKER_URL
  value: {{ printf "redis://%s-redis:6379/0" (include "qcgate.fullname" .) | quote }}
{{- end }}
{{- else if .Values.broker.existingSecret }}
- name: QCGATE_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.broker.existingSecret }}
      key: {{ .Values.broker.existingSecretKey }}
{{- else }}
{{- $_ := required "broker.url or broker.existingSecret (or redis.enabled): the Redis that receivers and workers share" .Values.broker.url }}
- name: QCGATE_BROKER_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "qcgate.credentialsSecret" . }}
      key: broker-url
{{- end }}
{{- end -}}

{{/* A ListenerTls setting as JSON (pydantic-settings reads a nested model from one JSON variable). */}}
{{- define "qcgate.listenerTls" -}}
{{- $tls := dict "cert_file" (printf "%s/tls.crt" .dir) "key_file" (printf "%s/tls.key" .dir) -}}
{{- if .tls.mutual -}}
{{- $_ := set $tls "ca_file" (printf "%s/ca.crt" .dir) -}}
{{- end -}}
{{- toJson $tls -}}
{{- end -}}

{{/*
The environment every long-running qcgate process shares: (dict "root" $ "kind" "receiver"). Each TLS
key reaches only the process that listens with it (DICOM: receiver, HTTPS: api).
Migrations are the hook Job's; the receiver never sweeps (the sweeper Deployment does); metrics files
go to the pod's own emptyDir; scp, worker and sweeper serve /healthz, /readyz and /metrics on the
status port.
*/}}
{{- define "qcgate.env" -}}
{{- $root := .root -}}
{{- $values := $root.Values -}}
- name: HOME
  value: /tmp
- name: QCGATE_DATA_DIR
  value: /data
- name: QCGATE_PROMETHEUS_DIR
  value: /run/qcgate/prometheus
- name: QCGATE_MIGRATE_ON_START
  value: "false"
- name: QCGATE_RECEIVER_RUNS_SWEEPER
  value: "false"
- name: QCGATE_AE_TITLE
  value: {{ $values.aeTitle | quote }}
- name: QCGATE_LOG_LEVEL
  value: {{ $values.logLevel | quote }}
- name: QCGATE_QUIET_PERIOD_S
  value: {{ $values.quietPeriodSeconds | quote }}
{{- if $values.workers.gpu.enabled }}
{{- /* Every process that queues series (sweeper, API rescore) sends assessments to the gpu queue. */}}
- name: QCGATE_GPU_QUEUE_ENABLED
  value: "true"
{{- end }}
{{- if $values.metricStations }}
- name: QCGATE_METRIC_STATIONS
  value: {{ join "," $values.metricStations | quote }}
{{- end }}
{{- /* Pods are reached over the cluster network: both listeners leave loopback, so the tokens and
     the AE allow-list are required (qcgate refuses to start without them). */}}
- name: QCGATE_DICOM_HOST
  value: "0.0.0.0"
- name: QCGATE_DICOM_PORT
  value: {{ $values.receiver.containerPort | quote }}
- name: QCGATE_HTTP_HOST
  value: "0.0.0.0"
- name: QCGATE_HTTP_PORT
  value: {{ $values.api.containerPort | quote }}
{{- if ne .kind "api" }}
- name: QCGATE_STATUS_HOST
  value: "0.0.0.0"
- name: QCGATE_STATUS_PORT
  value: {{ $values.statusPort | quote }}
{{- end }}
{{- if not $values.allowedCallingAes }}
{{- fail "allowedCallingAes: the AE titles that may send (scanners, PACS)" }}
{{- end }}
- name: QCGATE_ALLOWED_CALLING_AES
  value: {{ join "," $values.allowedCallingAes | quote }}
- name: QCGATE_API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ required "apiTokensSecret: a Secret holding the API tokens under the key tokens" $values.apiTokensSecret }}
      key: {{ $values.apiTokensSecretKey }}
{{- if $values.apiClientsSecret }}
- name: QCGATE_API_CLIENTS
  valueFrom:
    secretKeyRef:
      name: {{ $values.apiClientsSecret }}
      key: {{ $values.apiClientsSecretKey }}
{{- end }}
{{ include "qcgate.databaseEnv" (dict "root" $root "secret" (include "qcgate.credentialsSecret" $root)) }}
{{- include "qcgate.brokerEnv" $root }}
{{- if $values.webhooks.existingSecret }}
- name: QCGATE_WEBHOOKS
  valueFrom:
    secretKeyRef:
      name: {{ $values.webhooks.existingSecret }}
      key: {{ $values.webhooks.existingSecretKey }}
{{- else if $values.webhooks.definitions }}
- name: QCGATE_WEBHOOKS
  valueFrom:
    secretKeyRef:
      name: {{ include "qcgate.credentialsSecret" $root }}
      key: webhooks
{{- end }}
{{- if and $values.tls.dicom.enabled (eq .kind "receiver") }}
- name: QCGATE_DICOM_TLS
  value: {{ include "qcgate.listenerTls" (dict "tls" $values.tls.dicom "dir" "/etc/qcgate/tls/dicom") | quote }}
{{- end }}
{{- if and $values.tls.http.enabled (eq .kind "api") }}
- name: QCGATE_HTTP_TLS
  value: {{ include "qcgate.listenerTls" (dict "tls" $values.tls.http "dir" "/etc/qcgate/tls/http") | quote }}
{{- end }}
{{- if $values.config }}
- name: QCGATE_CONFIG
  value: /etc/qcgate/config/qcgate.yaml
{{- end }}
{{- range $name, $value := $values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with $values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes of every long-running qcgate pod: the shared spool, the pod's own metrics dir and /tmp, settings and TLS. */}}
{{- define "qcgate.volumes" -}}
{{- $values := .root.Values -}}
- name: spool
  persistentVolumeClaim:
    claimName: {{ $values.spool.existingClaim | default (printf "%s-spool" (include "qcgate.fullname" .root)) }}
- name: prometheus
  emptyDir:
    sizeLimit: 256Mi
- name: tmp
  emptyDir:
    sizeLimit: {{ $values.tmpSizeLimit }}
{{- if $values.config }}
- name: config
  configMap:
    name: {{ include "qcgate.fullname" .root }}-config
{{- end }}
{{- if and $values.tls.dicom.enabled (eq .kind "receiver") }}
- name: tls-dicom
  secret:
    secretName: {{ required "tls.dicom.secretName: a Secret with tls.crt, tls.key (and ca.crt for mutual TLS)" $values.tls.dicom.secretName }}
    defaultMode: 0440
{{- end }}
{{- if and $values.tls.http.enabled (eq .kind "api") }}
- name: tls-http
  secret:
    secretName: {{ required "tls.http.secretName: a Secret with tls.crt, tls.key (and ca.crt for mutual TLS)" $values.tls.http.secretName }}
    defaultMode: 0440
{{- end }}
{{- with $values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "qcgate.volumeMounts" -}}
{{- $values := .root.Values -}}
- name: spool
  mountPath: /data
- name: prometheus
  mountPath: /run/qcgate/prometheus
- name: tmp
  mountPath: /tmp
{{- if $values.config }}
- name: config
  mountPath: /etc/qcgate/config
  readOnly: true
{{- end }}
{{- if and $values.tls.dicom.enabled (eq .kind "receiver") }}
- name: tls-dicom
  mountPath: /etc/qcgate/tls/dicom
  readOnly: true
{{- end }}
{{- if and $values.tls.http.enabled (eq .kind "api") }}
- name: tls-http
  mountPath: /etc/qcgate/tls/http
  readOnly: true
{{- end }}
{{- with $values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Probes of the processes that serve the status endpoint (receiver, worker, sweeper). */}}
{{- define "qcgate.statusProbes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: {{ .probes.periodSeconds }}
  timeoutSeconds: {{ .probes.timeoutSeconds }}
  failureThreshold: {{ .probes.livenessFailureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: {{ .probes.periodSeconds }}
  timeoutSeconds: {{ .probes.timeoutSeconds }}
  failureThreshold: {{ .probes.readinessFailureThreshold }}
{{- end -}}

{{/*
The pod-level parts every qcgate pod shares: (dict "root" $ "component" $values.receiver).
*/}}
{{- define "qcgate.podSpecCommon" -}}
{{- $root := .root -}}
{{- $component := .component -}}
automountServiceAccountToken: false
serviceAccountName: {{ include "qcgate.serviceAccountName" $root }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $component.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $component.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $component.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $component.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $component.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "qcgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "qcgate.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Pod annotations: the user's, and checksums so that a change of settings or credentials rolls the pods. */}}
{{- define "qcgate.podAnnotations" -}}
{{- $root := .root -}}
checksum/config: {{ toYaml $root.Values.config | sha256sum }}
checksum/credentials: {{ printf "%s|%s|%s" $root.Values.database.url $root.Values.broker.url (toJson $root.Values.webhooks.definitions) | sha256sum }}
{{- with .component.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
One qcgate Deployment: (dict "root" $ "name" "receiver" "values" $.Values.receiver "args" (list "scp")
"ports" (list ...) "probes" "<probe YAML>" "env" (list ...) "image" "<image>" "gpus" 0 "autoscaled" false).
Everything that makes a pod safe to run (non-root, read-only root, no capabilities, resources, probes)
is here once, for every process kind.
*/}}
{{- define "qcgate.deployment" -}}
{{- $root := .root -}}
{{- $values := .values -}}
{{- $fullname := include "qcgate.fullname" $root -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $fullname }}-{{ .name }}
  labels:
    {{- include "qcgate.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
spec:
  {{- if not .autoscaled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "qcgate.selectorLabels" (dict "root" $root "component" .name) | nindent 6 }}
  {{- with $values.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "qcgate.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .name }}
        {{- if .statusEndpoint }}
        qcgate.io/status-endpoint: "true"
        {{- end }}
        {{- with $values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "qcgate.podAnnotations" (dict "root" $root "component" $values) | nindent 8 }}
    spec:
      {{- include "qcgate.podSpecCommon" (dict "root" $root "component" $values) | nindent 6 }}
      {{- with $values.runtimeClassName }}
      runtimeClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $values.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .name }}
          image: {{ .image | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml .args | nindent 12 }}
          ports:
            {{- toYaml .ports | nindent 12 }}
          env:
            {{- include "qcgate.env" (dict "root" $root "kind" .name) | nindent 12 }}
            {{- with .env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- .probes | nindent 10 }}
          resources:
            {{- $resources := deepCopy $values.resources }}
            {{- if .gpus }}
            {{- $limits := $resources.limits | default dict }}
            {{- $_ := set $limits "nvidia.com/gpu" .gpus }}
            {{- $_ := set $resources "limits" $limits }}
            {{- end }}
            {{- toYaml $resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "qcgate.volumeMounts" (dict "root" $root "kind" .name) | nindent 12 }}
      volumes:
        {{- include "qcgate.volumes" (dict "root" $root "kind" .name) | nindent 8 }}
{{- end -}}

{{/* A PodDisruptionBudget for one component: (dict "root" $ "name" "api" "pdb" $.Values.api.pdb). */}}
{{- define "qcgate.pdb" -}}
{{- if .pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "qcgate.fullname" .root }}-{{ .name }}
  labels:
    {{- include "qcgate.labels" .root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
spec:
  {{- if hasKey .pdb "minAvailable" }}
  minAvailable: {{ .pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .pdb.maxUnavailable | default 1 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "qcgate.selectorLabels" (dict "root" .root "component" .name) | nindent 6 }}
{{- end }}
{{- end -}}

{{- define "qcgate.env" -}}
- name: QCGATE_DATA_DIR
  value: /data
- name: QCGATE_DATABASE_URL
  value: {{ .Values.databaseUrl | quote }}
- name: QCGATE_BROKER_URL
  value: {{ .Values.brokerUrl | quote }}
- name: QCGATE_AE_TITLE
  value: {{ .Values.aeTitle | quote }}
- name: QCGATE_WORKER_CONCURRENCY
  value: {{ .Values.worker.concurrency | quote }}
- name: QCGATE_QUIET_PERIOD_S
  value: {{ .Values.quietPeriodSeconds | quote }}
{{- /* Pods are reached over the cluster network: both listeners leave loopback, so the tokens and
     the AE allow-list are required (qcgate refuses to start without them). */}}
- name: QCGATE_DICOM_HOST
  value: "0.0.0.0"
- name: QCGATE_HTTP_HOST
  value: "0.0.0.0"
- name: QCGATE_ALLOWED_CALLING_AES
  value: {{ required "allowedCallingAes: the AE titles that may send (scanners, PACS)" .Values.allowedCallingAes | join "," | quote }}
- name: QCGATE_API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ required "apiTokensSecret: a Secret holding the API tokens under the key tokens" .Values.apiTokensSecret }}
      key: tokens
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "qcgate.container" -}}
image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
args: [{{ .role | quote }}]
env:
{{ include "qcgate.env" .root | indent 2 }}
volumeMounts:
  - name: spool
    mountPath: /data
{{- end -}}

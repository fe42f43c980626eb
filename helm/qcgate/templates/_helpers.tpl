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
{{- if .Values.apiTokensSecret }}
- name: QCGATE_API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.apiTokensSecret }}
      key: tokens
{{- end }}
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

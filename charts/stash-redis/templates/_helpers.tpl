{{/* The controller's image reference. */}}
{{- define "stash-redis.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The runner's image reference. */}}
{{- define "stash-redis.runnerImage" -}}
{{ .Values.runner.image.repository }}:{{ .Values.runner.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The Secret that holds the serving certificate. */}}
{{- define "stash-redis.certSecret" -}}
{{ .Values.certificate.existingSecret | default "stash-webhook-cert" }}
{{- end }}

{{/*
The clientConfig of one webhook: the Service, or webhookURL for a controller outside the
cluster, and the CA bundle when one is given. Called as
include "stash-redis.clientConfig" (dict "path" "/validate-..." "root" $).
*/}}
{{- define "stash-redis.clientConfig" -}}
{{- $v := .root.Values -}}
{{- if $v.webhookURL }}
url: {{ printf "%s%s" (trimSuffix "/" $v.webhookURL) .path | quote }}
{{- else }}
service:
  name: stash-webhook
  namespace: {{ .root.Release.Namespace }}
  path: {{ .path }}
{{- end }}
{{- with $v.certificate.caBundle }}
caBundle: {{ b64enc . }}
{{- end }}
{{- end }}

{{/* The release's base name: the release name when it already says pgro, else <release>-pgro. */}}
{{- define "pgro.fullname" -}}
{{- if contains "pgro" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-pgro" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pgro.serviceAccountName" -}}
{{- default (include "pgro.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "pgro.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels of every object; the selector labels are the two deploy/operator.yaml uses. */}}
{{- define "pgro.labels" -}}
app.kubernetes.io/name: pgro
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "pgro.selectorLabels" -}}
app.kubernetes.io/name: pgro
app.kubernetes.io/component: operator
{{- end -}}

{{/* Name of the chart, shortened to 63 characters. */}}
{{- define "ml-platform.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name: the release name alone when it already contains the chart name. */}}
{{- define "ml-platform.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ml-platform.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "ml-platform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ml-platform
{{- end -}}

{{- define "ml-platform.mlflow.name" -}}
{{- printf "%s-mlflow" (include "ml-platform.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ml-platform.mlflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ml-platform.name" . }}-mlflow
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* In-cluster URL of the MLflow tracking server. */}}
{{- define "ml-platform.mlflow.url" -}}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "ml-platform.mlflow.name" .) .Release.Namespace (int .Values.mlflow.port) -}}
{{- end -}}

{{/* repository:tag of an image block. */}}
{{- define "ml-platform.image" -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}

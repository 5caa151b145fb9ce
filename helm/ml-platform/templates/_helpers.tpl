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

{{/* repository@digest of an image block when it pins a digest, else repository:tag. */}}
{{- define "ml-platform.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository (toString .tag) -}}
{{- end -}}
{{- end -}}

{{/* Every pod of ours: a non-root user, the runtime's default seccomp profile. */}}
{{- define "ml-platform.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Every container of ours: read-only root filesystem (emptyDir where it writes), no privilege, no capability. */}}
{{- define "ml-platform.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "ml-platform.metricsExporter.name" -}}
{{- printf "%s-metrics-exporter" (include "ml-platform.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ml-platform.metricsExporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ml-platform.name" . }}-metrics-exporter
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The Dagster chart's `dagster.fullname` (as rendered inside that chart), so that we can name the
objects it creates: `<fullname>-instance` is the ConfigMap holding the instance's dagster.yaml.
*/}}
{{- define "ml-platform.dagster.fullname" -}}
{{- $dagster := .Values.dagster | default dict -}}
{{- if $dagster.fullnameOverride -}}
{{- $dagster.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "dagster" $dagster.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The chart's name, or nameOverride.
*/}}
{{- define "netbootd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: fullnameOverride, else "<release>-netbootd" (just "<release>" when the
release name already contains the chart name). Truncated to 63 characters (DNS label).
*/}}
{{- define "netbootd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
chart name and version, for the helm.sh/chart label.
*/}}
{{- define "netbootd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "netbootd.labels" -}}
helm.sh/chart: {{ include "netbootd.chart" . }}
{{ include "netbootd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/component: dhcp-server
app.kubernetes.io/part-of: netbootd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: they never change over the release's life (a DaemonSet's selector is immutable).
*/}}
{{- define "netbootd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netbootd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "netbootd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "netbootd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image: repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "netbootd.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The coordination.k8s.io Lease the HA instances elect a pool holder on.
*/}}
{{- define "netbootd.poolLease" -}}
{{- printf "%s-pool" (include "netbootd.fullname" .) }}
{{- end }}

{{/*
The host interfaces netbootd attaches to, as a JSON list: interfaces, or the one interface.
Both set is refused: which one was meant is not for the chart to guess.
*/}}
{{- define "netbootd.interfaces" -}}
{{- if and .Values.interface .Values.interfaces }}
{{- fail (printf "interface (%s) and interfaces ([%s]) are both set: use interfaces alone, e.g. interfaces: [%s]" .Values.interface (join ", " .Values.interfaces) (join ", " (prepend .Values.interfaces .Values.interface))) }}
{{- end }}
{{- $ifaces := .Values.interfaces | default (list .Values.interface) | compact }}
{{- if not $ifaces }}
{{- fail "interfaces: set the host interfaces netbootd attaches to, e.g. --set interfaces={eth1,eth2}, or --set interface=eth1 for one" }}
{{- end }}
{{- toJson $ifaces }}
{{- end }}

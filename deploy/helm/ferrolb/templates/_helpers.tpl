{{/*
Labels of every object. Call with (dict "ctx" $ "component" "controller"|"speaker"|""), and
optionally "extra" (more labels; the chart's own win over them, and they over commonLabels).
The selector labels (name, component) are the same as deploy/'s, so a kustomize install can be
taken over by Helm without changing immutable selectors.
*/}}
{{- define "ferrolb.labels" -}}
{{- $labels := dict "app.kubernetes.io/name" "ferrolb" "helm.sh/chart" (printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version) "app.kubernetes.io/managed-by" .ctx.Release.Service "app.kubernetes.io/instance" .ctx.Release.Name -}}
{{- if .component }}{{ $_ := set $labels "app.kubernetes.io/component" .component }}{{ end -}}
{{- toYaml (merge $labels (.extra | default (dict)) (.ctx.Values.commonLabels | default (dict))) -}}
{{- end -}}

{{/* Selector labels of a component's Pods. Call with the component name. */}}
{{- define "ferrolb.selectorLabels" -}}
app.kubernetes.io/name: ferrolb
app.kubernetes.io/component: {{ . }}
{{- end -}}

{{/* Pod template labels: selector labels (which win) and podLabels. */}}
{{- define "ferrolb.podLabels" -}}
{{- $sel := dict "app.kubernetes.io/name" "ferrolb" "app.kubernetes.io/component" .component -}}
{{- toYaml (merge $sel (.ctx.Values.podLabels | default (dict))) -}}
{{- end -}}

{{/*
The metadata lines every object carries after its name/namespace: labels and, when
commonAnnotations is set, annotations. Call with (dict "ctx" $ "component" ...).
*/}}
{{- define "ferrolb.metadata" -}}
labels:
  {{- include "ferrolb.labels" . | nindent 2 }}
{{- with .ctx.Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "ferrolb.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository ($img.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets of a Pod spec, when any. */}}
{{- define "ferrolb.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Values that the schema cannot check alone. */}}
{{- define "ferrolb.checks" -}}
{{- if eq .Values.image.tag "latest" -}}
{{- fail (printf "image.tag: \"latest\" is not accepted, pin a version (empty means the chart's appVersion %s)" .Chart.AppVersion) -}}
{{- end -}}
{{- if and .Values.prometheus.serviceMonitor.enabled .Values.prometheus.podMonitor.enabled -}}
{{- fail "prometheus.serviceMonitor.enabled and prometheus.podMonitor.enabled are both true: enable one of them, or every target is scraped twice" -}}
{{- end -}}
{{- if and .Values.prometheus.podMonitor.enabled (not .Values.prometheus.podMonitor.bearerTokenSecret.name) -}}
{{- fail "prometheus.podMonitor.bearerTokenSecret.name is empty: the components' /metrics needs a bearer token, and a PodMonitor can only send one from a Secret in the release namespace (a token of a ServiceAccount bound to ferrolb:metrics-reader); or use prometheus.serviceMonitor, which sends Prometheus's own token" -}}
{{- end -}}
{{- if not (or .Values.speaker.layer2.enabled .Values.speaker.bgp.enabled) -}}
{{- fail "speaker.layer2.enabled and speaker.bgp.enabled are both false: the speaker would announce nothing; enable at least one mode" -}}
{{- end -}}
{{- end -}}

{{/* Names and labels of the ModelVariant operator. Each takes $. */}}

{{- define "volatility.operator.name" -}}
{{- include "volatility.componentName" (dict "ctx" . "component" "operator") }}
{{- end }}

{{/* The Deployments the release's ModelVariant governs, as role=name pairs. */}}
{{- define "volatility.operator.workloads" -}}
{{- $out := list }}
{{- if .Values.api.enabled }}
{{- $out = append $out (printf "api=%s" (include "volatility.componentName" (dict "ctx" . "component" "api"))) }}
{{- end }}
{{- if .Values.consumer.enabled }}
{{- $out = append $out (printf "consumer=%s" (include "volatility.componentName" (dict "ctx" . "component" "consumer"))) }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{/* With the operator, the ModelVariant is the one truth about the variant of both scorers. */}}
{{- define "volatility.operator.validate" -}}
{{- range $component := list "api" "consumer" }}
{{- $own := (index $.Values $component).modelVariant }}
{{- if and $own (ne $own $.Values.modelVariant) }}
{{- fail (printf "%s.modelVariant=%s differs from modelVariant=%s: with operator.enabled the release's ModelVariant sets the variant of the API and the consumer together; leave %s.modelVariant empty" $component $own $.Values.modelVariant $component) }}
{{- end }}
{{- end }}
{{- end }}

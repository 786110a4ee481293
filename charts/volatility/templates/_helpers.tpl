{{/*
Names. Kubernetes name fields are DNS labels of at most 63 characters.
*/}}
{{- define "volatility.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "volatility.fullname" -}}
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
Name of a component's resources; takes (dict "ctx" $ "component" "api"). The full name is cut
before the suffix is added, so that long release names never make two components collide.
*/}}
{{- define "volatility.componentName" -}}
{{- include "volatility.suffixedName" (dict "ctx" .ctx "suffix" .component "max" 63) }}
{{- end }}

{{/* "<fullname>-<suffix>" in at most .max characters, cutting the full name only. */}}
{{- define "volatility.suffixedName" -}}
{{- $room := sub (int .max) (add1 (len .suffix)) | int }}
{{- printf "%s-%s" (include "volatility.fullname" .ctx | trunc $room | trimSuffix "-") .suffix }}
{{- end }}

{{/*
Kafka StatefulSet name: 52 characters at most, because the controller appends an 11-character
revision hash to it in the controller-revision-hash label, which is itself limited to 63.
*/}}
{{- define "volatility.kafka.name" -}}
{{- include "volatility.suffixedName" (dict "ctx" . "suffix" "kafka" "max" 52) }}
{{- end }}

{{- define "volatility.kafka.headlessName" -}}
{{- printf "%s-headless" (include "volatility.kafka.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "volatility.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Version label: the project image tag in use, made a valid label value. */}}
{{- define "volatility.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion | replace "+" "_" | replace ":" "_" | replace "@" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of the release. Never add version or chart here: a
Deployment's selector is immutable, so such labels would break every upgrade.
Takes (dict "ctx" $ "component" "api").
*/}}
{{- define "volatility.selectorLabels" -}}
app.kubernetes.io/name: {{ include "volatility.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Release-wide selector: every pod of this release, whatever its component. */}}
{{- define "volatility.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "volatility.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Metadata labels; takes (dict "ctx" $ "component" "api"). */}}
{{- define "volatility.labels" -}}
helm.sh/chart: {{ include "volatility.chart" .ctx }}
{{ include "volatility.selectorLabels" . }}
app.kubernetes.io/version: {{ include "volatility.version" .ctx | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: volatility
{{- end }}

{{- define "volatility.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "volatility.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Project image reference; takes (dict "ctx" $ "image" .Values.api.image). */}}
{{- define "volatility.image" -}}
{{- $tag := .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion }}
{{- with .ctx.Values.image.registry }}
{{- printf "%s/%s:%s" (trimSuffix "/" .) $.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* Model variant of a scoring component; takes (dict "ctx" $ "values" .Values.api). */}}
{{- define "volatility.modelVariant" -}}
{{- .values.modelVariant | default .ctx.Values.modelVariant }}
{{- end }}

{{/*
The variant in a scorer's pod template; takes (dict "ctx" $ "component" "api" "values" ...).
When the release's ModelVariant governs the scorers, the operator owns MODEL_VARIANT once the
Deployment exists: an upgrade keeps what the live template runs, so that Helm's three-way merge
never undoes a switch made with kubectl (an upgrade that changes `modelVariant` still switches,
through the ModelVariant). On install, and without a cluster to ask (helm template), the values.
*/}}
{{- define "volatility.templateVariant" -}}
{{- $variant := include "volatility.modelVariant" . }}
{{- $op := .ctx.Values.operator }}
{{- if and $op.enabled $op.modelVariant.create }}
{{- $live := lookup "apps/v1" "Deployment" .ctx.Release.Namespace (include "volatility.componentName" .) }}
{{- range (dig "spec" "template" "spec" "containers" list $live) }}
{{- range (get . "env" | default list) }}
{{- if and (eq (get . "name") "MODEL_VARIANT") (get . "value") }}
{{- $variant = get . "value" }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $variant }}
{{- end }}

{{/*
Kafka bootstrap address: the bundled broker's client Service, or the external cluster. Fails
the render when neither is available.
*/}}
{{- define "volatility.kafka.bootstrapServers" -}}
{{- if .Values.kafka.enabled }}
{{- printf "%s:9092" (include "volatility.kafka.name" .) }}
{{- else }}
{{- required "kafka.bootstrapServers is required when kafka.enabled=false: set it to host:port[,host:port] of an existing Kafka cluster, or set kafka.enabled=true to run the bundled broker" .Values.kafka.bootstrapServers }}
{{- end }}
{{- end }}

{{/* Checks that belong to no single template; included from the shared ConfigMap. */}}
{{- define "volatility.validate" -}}
{{- if and .Values.kafka.enabled (ne .Values.kafka.securityProtocol "PLAINTEXT") }}
{{- fail (printf "kafka.securityProtocol=%s needs an external cluster: the bundled broker (kafka.enabled=true) speaks PLAINTEXT only" .Values.kafka.securityProtocol) }}
{{- end }}
{{- if and .Values.kafka.sasl.password .Values.kafka.sasl.existingSecret }}
{{- fail "set either kafka.sasl.password or kafka.sasl.existingSecret, not both" }}
{{- end }}
{{- end }}

{{- define "volatility.kafka.saslSecretName" -}}
{{- .Values.kafka.sasl.existingSecret | default (include "volatility.suffixedName" (dict "ctx" . "suffix" "kafka-sasl" "max" 63)) }}
{{- end }}

{{- define "volatility.kafka.hasSaslPassword" -}}
{{- if or .Values.kafka.sasl.password .Values.kafka.sasl.existingSecret }}true{{ end }}
{{- end }}

{{/* Checksum of the shared configuration, so pods restart when it changes. */}}
{{- define "volatility.configChecksum" -}}
{{- $cfg := include (print .Template.BasePath "/configmap.yaml") . }}
{{- $secret := include (print .Template.BasePath "/secret.yaml") . }}
{{- printf "%s%s" $cfg $secret | sha256sum }}
{{- end }}

{{/* Whether ServiceMonitors and the PrometheusRule are rendered. */}}
{{- define "volatility.monitoring.enabled" -}}
{{- $detected := and .Values.monitoring.serviceMonitors.autodetect (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") }}
{{- if or .Values.monitoring.serviceMonitors.enabled $detected }}true{{ end }}
{{- end }}

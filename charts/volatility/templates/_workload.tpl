{{/*
Objects and snippets that repeat for every component. Each takes
(dict "ctx" $ "component" "<name>" "values" .Values.<component>) unless noted.
*/}}

{{/* Pod-level fields shared by every project pod. */}}
{{- define "volatility.podSpecCommon" -}}
serviceAccountName: {{ include "volatility.serviceAccountName" .ctx }}
automountServiceAccountToken: false
# Service links would put one variable per Service of the namespace into the environment.
enableServiceLinks: false
securityContext:
  {{- toYaml .ctx.Values.podSecurityContext | nindent 2 }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Kafka client environment: the shared ConfigMap plus the SASL password. Takes $. */}}
{{- define "volatility.kafkaEnvFrom" -}}
- configMapRef:
    name: {{ include "volatility.fullname" . }}
{{- end }}

{{- define "volatility.kafkaSecretEnv" -}}
{{- if include "volatility.kafka.hasSaslPassword" . }}
- name: KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "volatility.kafka.saslSecretName" . }}
      key: {{ .Values.kafka.sasl.existingSecretKey }}
{{- end }}
{{- end }}

{{/* Settings `volatility kafka init` reads. Takes $. */}}
{{- define "volatility.topicsEnv" -}}
- name: KAFKA_TOPIC_PARTITIONS
  value: {{ .Values.kafka.topics.partitions | quote }}
- name: KAFKA_TOPIC_REPLICATION_FACTOR
  value: {{ .Values.kafka.topics.replicationFactor | quote }}
- name: KAFKA_TOPIC_RETENTION_MS
  value: {{ .Values.kafka.topics.retentionMs | int64 | quote }}
{{- end }}

{{/* A container running `volatility kafka init`; takes (dict "ctx" $ "name" "..." "image" <image values> "resources" <resources>). */}}
{{- define "volatility.topicsContainer" -}}
- name: {{ .name }}
  image: {{ include "volatility.image" (dict "ctx" .ctx "image" .image) }}
  imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
  args: ["kafka", "init"]
  env:
    {{- include "volatility.topicsEnv" .ctx | nindent 4 }}
    {{- with include "volatility.kafkaSecretEnv" .ctx }}
    {{- . | trim | nindent 4 }}
    {{- end }}
  envFrom:
    {{- include "volatility.kafkaEnvFrom" .ctx | nindent 4 }}
  securityContext:
    {{- toYaml .ctx.Values.containerSecurityContext | nindent 4 }}
  {{- with .resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/* /tmp as an emptyDir: the root filesystem is read-only. */}}
{{- define "volatility.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/*
Deployment of a streaming service (ingest, featurizer, consumer): one `volatility <command>`
process with /metrics, /healthz and /readyz on the metrics port. Extra keys: "command" (the
subcommand) and "env" (rendered EnvVar list, component-specific).
*/}}
{{- define "volatility.streamDeployment" -}}
{{- $ctx := .ctx }}
{{- $v := .values }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "volatility.componentName" . }}
  labels:
    {{- include "volatility.labels" . | nindent 4 }}
spec:
  {{- if not (and $v.autoscaling $v.autoscaling.enabled) }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 3
  {{- if eq (.strategy | default "") "Recreate" }}
  strategy:
    type: Recreate
  {{- else if .surgeAll }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # Every new pod starts at once and an old one goes only when a new one is ready.
      maxUnavailable: 0
      maxSurge: 100%
  {{- end }}
  selector:
    matchLabels:
      {{- include "volatility.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "volatility.labels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include "volatility.configChecksum" $ctx }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- include "volatility.podSpecCommon" . | nindent 6 }}
      # Above the services' shutdown budget: the consumer loop stops, flushes and commits.
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{ .component }}
          image: {{ include "volatility.image" (dict "ctx" $ctx "image" $v.image) }}
          imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
          args: [{{ .command | quote }}]
          ports:
            - name: metrics
              containerPort: {{ $v.metricsPort }}
              protocol: TCP
          env:
            - name: METRICS_PORT
              value: {{ $v.metricsPort | quote }}
            {{- if $ctx.Values.kafka.topics.createOnStart }}
            - name: KAFKA_CREATE_TOPICS
              value: "true"
            {{- include "volatility.topicsEnv" $ctx | nindent 12 }}
            {{- end }}
            {{- with include "volatility.kafkaSecretEnv" $ctx }}
            {{- . | trim | nindent 12 }}
            {{- end }}
            {{- with .env }}
            {{- . | trim | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          envFrom:
            {{- include "volatility.kafkaEnvFrom" $ctx | nindent 12 }}
          # No startup probe: the kubelet probes readiness only once a startup probe has
          # passed, which adds up to a second to every new pod of a switch. The liveness
          # probe's delay still gives a start about a minute before a restart, as before.
          livenessProbe:
            httpGet:
              path: /healthz
              port: metrics
            initialDelaySeconds: 30
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: metrics
            periodSeconds: 1
            timeoutSeconds: 2
            failureThreshold: 3
          securityContext:
            {{- toYaml $ctx.Values.containerSecurityContext | nindent 12 }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        {{- include "volatility.tmpVolume" . | nindent 8 }}
{{- end }}

{{/* ClusterIP Service in front of a streaming service's metrics port. */}}
{{- define "volatility.metricsService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "volatility.componentName" . }}
  labels:
    {{- include "volatility.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "volatility.selectorLabels" . | nindent 4 }}
  ports:
    - name: metrics
      port: {{ .values.metricsPort }}
      targetPort: metrics
      protocol: TCP
{{- end }}

{{- define "volatility.pdb" -}}
{{- if .values.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "volatility.componentName" . }}
  labels:
    {{- include "volatility.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "volatility.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{/* HorizontalPodAutoscaler on CPU. */}}
{{- define "volatility.hpa" -}}
{{- if .values.autoscaling.enabled }}
{{- if gt (int .values.autoscaling.minReplicas) (int .values.autoscaling.maxReplicas) }}
{{- fail (printf "%s.autoscaling.minReplicas (%d) exceeds maxReplicas (%d)" .component (int .values.autoscaling.minReplicas) (int .values.autoscaling.maxReplicas)) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "volatility.componentName" . }}
  labels:
    {{- include "volatility.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "volatility.componentName" . }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

{{/* ServiceMonitor for a component's Service; extra key "port" (the Service port name). */}}
{{- define "volatility.serviceMonitor" -}}
{{- if include "volatility.monitoring.enabled" .ctx }}
{{- $sm := .ctx.Values.monitoring.serviceMonitors }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "volatility.componentName" . }}
  labels:
    {{- include "volatility.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "volatility.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames:
      - {{ .ctx.Release.Namespace }}
  endpoints:
    - port: {{ .port }}
      path: /metrics
      # The metrics carry their own `service` label (the pipeline stage); keep it rather than
      # have it renamed to exported_service by the target's Service name.
      honorLabels: true
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
{{- end }}
{{- end }}

{{/*
NetworkPolicy admitting only the scrapers to a streaming service's metrics port. Kubelet
probes come from the node and are not subject to NetworkPolicy.
*/}}
{{- define "volatility.metricsNetworkPolicy" -}}
{{- if .ctx.Values.networkPolicy.enabled }}
{{- $np := .ctx.Values.networkPolicy }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "volatility.componentName" . }}
  labels:
    {{- include "volatility.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "volatility.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
  {{- if $np.metrics.enabled }}
  ingress:
    - from:
        - namespaceSelector:
            {{- toYaml $np.metrics.namespaceSelector | nindent 12 }}
          {{- with $np.metrics.podSelector }}
          podSelector:
            {{- toYaml . | nindent 12 }}
          {{- end }}
      ports:
        - port: metrics
          protocol: TCP
  {{- else }}
  # Metrics scraping disabled: no ingress at all.
  ingress: []
  {{- end }}
{{- end }}
{{- end }}

{{/* Environment of ingest. Takes $. */}}
{{- define "volatility.ingestEnv" -}}
- name: INGEST_PRODUCTS
  value: {{ join "," .Values.ingest.products | quote }}
- name: INGEST_WS_URL
  {{- if .Values.simulator.enabled }}
  value: {{ printf "ws://%s:%v" (include "volatility.componentName" (dict "ctx" . "component" "simulator")) .Values.simulator.port | quote }}
  {{- else }}
  value: {{ .Values.ingest.wsUrl | quote }}
  {{- end }}
- name: INGEST_STALE_AFTER_SECONDS
  value: {{ .Values.ingest.staleAfterSeconds | quote }}
{{- end }}

{{/* Environment of the featurizer: the products it takes are those ingest subscribes to. */}}
{{- define "volatility.featurizerEnv" -}}
- name: FEATURIZER_PRODUCTS
  value: {{ join "," .Values.ingest.products | quote }}
{{- end }}

{{/* The consumer scores the products ingest subscribes to; takes $. */}}
{{- define "volatility.consumerProductsEnv" -}}
- name: CONSUMER_PRODUCTS
  value: {{ join "," .Values.ingest.products | quote }}
{{- end }}

{{/*
Model selection of a scoring component; takes (dict "ctx" $ "component" ... "values" .Values.<component>).
Inline in each Deployment, not in the shared ConfigMap, so that switching one component's
variant rolls only that component.
*/}}
{{- define "volatility.modelEnv" -}}
- name: MODEL_VARIANT
  value: {{ include "volatility.templateVariant" . | quote }}
{{- with .values.modelDir }}
- name: MODEL_DIR
  value: {{ . | quote }}
{{- end }}
{{- end }}

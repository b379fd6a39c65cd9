// A bidirectional switch tying an input to X.
module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  wire [7:0] w = 8'hxx;
  tran (a[1], w[1]);
  assign y = a ^ b;
endmodule
